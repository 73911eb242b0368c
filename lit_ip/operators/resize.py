"""Super-resolution operators (downsampling by an integer factor), with exact SVDs."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .blockwise import BlockRankOneOperator
from .separable import SeparableOperator, taps_matrix


def _check_factor(owner: str, factor, in_shape) -> tuple[int, int, int, int]:
    if in_shape is None or len(in_shape) != 3:
        raise ValueError(f"{owner} needs in_shape = [C, H, W], got {in_shape}")
    f = int(factor)
    C, H, W = (int(s) for s in in_shape)
    if f < 1 or f != factor or H % f or W % f:
        raise ValueError(f"{owner}: factor must be a positive integer dividing H={H} and W={W}, got {factor}")
    return f, C, H, W


class AveragePoolSR(BlockRankOneOperator):
    """``y`` = mean of each ``f x f`` block (DDRM/DDNM "sr4" is ``f = 4``).

    Per block ``y = w^T b`` with ``w = 1/f^2``: one singular value ``|w| = 1/f`` with right
    singular vector ``1/f`` (DDRM, Kawar et al. 2022, App. B), completed per block by a
    Householder basis; ``U = I`` on the low-resolution grid.

    Args:
        factor: integer dividing H and W.
        in_shape: ``[C, H, W]``.
    """

    def __init__(self, factor: int, in_shape: Sequence[int]):
        f, C, H, W = _check_factor("AveragePoolSR", factor, in_shape)
        super().__init__([1.0 / f ** 2] * f ** 2, in_shape)
        self.factor = f
        self.out_shape = (C, H // f, W // f)

    def to_blocks(self, x):
        B, C, H, W = x.shape
        f = self.factor
        b = x.reshape(B, C, H // f, f, W // f, f).permute(0, 1, 2, 4, 3, 5)
        return b.reshape(B, C * (H // f) * (W // f), f * f)

    def from_blocks(self, b):
        C, H, W = self.in_shape
        f = self.factor
        x = b.reshape(b.shape[0], C, H // f, W // f, f, f).permute(0, 1, 2, 4, 3, 5)
        return x.reshape(b.shape[0], C, H, W)

    def extra_repr(self):
        return f"factor={self.factor}, in_shape={self.in_shape}"


def keys_cubic(t, a: float = -0.5):
    """Keys' cubic convolution kernel (a = -0.5: Catmull-Rom, MATLAB ``imresize``)."""
    t = abs(t)
    if t <= 1:
        return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1
    if t < 2:
        return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a
    return 0.0


def bicubic_matrix(n: int, factor: int, boundary: str = "symmetric") -> torch.Tensor:
    """``(n / f, n)`` antialiased bicubic downsampling matrix: output ``i`` sits at input
    coordinate ``c_i = (i + 1/2) f - 1/2`` and takes ``x_j`` with weight ``k((j - c_i) / f)``
    (Keys, kernel widened by ``f``), each row normalised to sum 1."""
    rows = []
    for i in range(n // factor):
        c = (i + 0.5) * factor - 0.5
        js = range(math.floor(c - 2 * factor), math.ceil(c + 2 * factor) + 1)
        w = [keys_cubic((j - c) / factor) for j in js]
        total = sum(w)
        rows.append([(j, wj / total) for j, wj in zip(js, w) if wj != 0])
    return taps_matrix(rows, n, boundary)


class BicubicSR(SeparableOperator):
    """Bicubic downsampling by ``factor``: ``Y_c = D_H X_c D_W^T`` with the separable Keys
    cubic (a = -0.5) matrices of :func:`bicubic_matrix` (the separable bicubic of DDRM,
    Kawar et al. 2022, App. B); exact SVD from the 1-D SVDs, singular values ``s_H s_W^T``.

    Args:
        factor: integer dividing H and W.
        in_shape: ``[C, H, W]``.
        boundary: how taps beyond the edge fold back (``symmetric`` like ``imresize``).
    """

    def __init__(self, factor: int, in_shape: Sequence[int], boundary: str = "symmetric"):
        f, C, H, W = _check_factor("BicubicSR", factor, in_shape)
        super().__init__(bicubic_matrix(H, f, boundary), bicubic_matrix(W, f, boundary), in_shape)
        self.factor, self.boundary = f, boundary

    def extra_repr(self):
        return f"factor={self.factor}, in_shape={self.in_shape}, boundary={self.boundary}"
