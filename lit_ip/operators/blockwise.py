"""Rank-one-per-block linear operators and their exact SVD by a Householder transform.

Shared by average-pooling super-resolution (blocks of ``f x f`` pixels) and
colorization (blocks of channels at one pixel), following the DDRM construction
(Kawar et al. 2022, App. B): each block ``b`` of ``k`` entries gives one measurement
``y = w^T b``, so per block ``A = |w| e_1 (w/|w|)^T`` with ``U = 1`` and ``V`` any
orthonormal basis whose first vector is ``w/|w|``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .base import SVDOperator
from .linalg import expect_shape, householder


class BlockRankOneOperator(SVDOperator):
    """``y_j = w^T x_{block j}`` for ``m`` disjoint blocks of ``k`` entries covering x.

    Subclasses define ``to_blocks(x) -> (B, m, k)``, ``from_blocks(b) -> (B, *in_shape)``
    and ``out_shape``. ``vt(x)`` lists the ``m`` coefficients along ``w/|w|`` first
    (singular value ``|w|`` each), then the ``m (k-1)`` coefficients of the null space.
    """

    out_shape: tuple[int, ...]

    def __init__(self, weights: Sequence[float], in_shape: Sequence[int]):
        if in_shape is None:
            raise ValueError(f"{type(self).__name__} needs in_shape (C, H, W)")
        super().__init__(in_shape)
        w = torch.as_tensor(weights, dtype=torch.float64).flatten()
        norm = float(w.norm())
        if norm == 0:
            raise ValueError(f"{type(self).__name__}: block weights must not all be zero")
        dtype = torch.get_default_dtype()
        self.register_buffer("w", w.to(dtype))
        self.register_buffer("Q", householder(w / norm).to(dtype))
        self.norm = norm

    # --- to be provided by subclasses -------------------------------------------
    def to_blocks(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def from_blocks(self, b: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- operator -----------------------------------------------------------
    def _blocks_of(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.to_blocks(x)

    def forward(self, x: Tensor) -> Tensor:
        y = self._blocks_of(x) @ self.w.to(x)
        return y.reshape(x.shape[0], *self.out_shape)

    def adjoint(self, y: Tensor) -> Tensor:
        expect_shape(y, self.out_shape, type(self).__name__, "y")
        return self.from_blocks(y.flatten(1)[..., None] * self.w.to(y))

    def vt(self, x: Tensor) -> Tensor:
        c = self._blocks_of(x) @ self.Q.to(x)  # Q symmetric: rows of c are Q^T b
        return torch.cat([c[..., 0], c[..., 1:].flatten(1)], dim=1)

    def v(self, z: Tensor) -> Tensor:
        expect_shape(z, (self.num_pixels(),), type(self).__name__, "z")
        m = self._m()
        c = torch.cat([z[:, :m, None], z[:, m:].reshape(z.shape[0], m, -1)], dim=2)
        return self.from_blocks(c @ self.Q.to(z))

    def replicate(self, y: Tensor) -> Tensor:
        """The right inverse ``R y = y 1 / (1^T w)`` of each block (``A R = I``; needs ``1^T w != 0``):
        nearest-neighbour upsampling for average pooling, the luminance repeated over the channels
        for colorization (the reference measurements of DPS-w, Bellchambers 2025, App. B.3.2, B.3.4)."""
        expect_shape(y, self.out_shape, type(self).__name__, "y")
        total = float(self.w.sum())
        if abs(total) < 1e-12 * float(self.w.abs().sum()):
            raise ValueError(f"{type(self).__name__}: the block weights sum to 0, no replicating right inverse")
        return self.from_blocks(y.flatten(1)[..., None].expand(-1, -1, self.w.numel()) / total)

    def ut(self, y: Tensor) -> Tensor:
        expect_shape(y, self.out_shape, type(self).__name__, "y")
        return y.flatten(1)

    def u(self, z: Tensor) -> Tensor:
        expect_shape(z, (self._m(),), type(self).__name__, "z")
        return z.reshape(z.shape[0], *self.out_shape)

    def _m(self) -> int:
        m = 1
        for d in self.out_shape:
            m *= d
        return m

    def singular_values(self) -> Tensor:
        return torch.full((1, self._m()), self.norm, dtype=self.w.dtype, device=self.w.device)
