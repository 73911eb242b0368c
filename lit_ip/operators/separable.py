"""Separable linear operators ``Y_c = M_h X_c M_w^T`` (per channel) with an exact SVD.

DDRM (Kawar et al. 2022, App. B) builds the SVD of a separable 2-D operator from the
SVDs of its two small 1-D matrices: with ``M_h = U_h S_h V_h^T`` and ``M_w = U_w S_w V_w^T``,

    A = (U_h (x) U_w) (S_h (x) S_w) (V_h (x) V_w)^T,

so ``vt(X) = V_h^T X V_w``, ``u(Z) = U_h Z U_w^T`` and the singular values are the outer
product ``s_h s_w^T``. Nothing larger than ``H x H`` or ``W x W`` is ever formed.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .base import SVDOperator
from .linalg import expect_shape

BOUNDARIES = ("zero", "reflect", "symmetric", "circular")


def fold_index(j: int, n: int, boundary: str):
    """Where tap ``j`` of a signal of length ``n`` lands under ``boundary`` (None: dropped).

    ``zero``: outside is 0. ``reflect``: mirror about the edge samples (``-1 -> 1``, like
    ``torch.nn.ReflectionPad``). ``symmetric``: mirror with the edge repeated (``-1 -> 0``,
    like MATLAB ``imresize``). ``circular``: periodic.
    """
    if 0 <= j < n:
        return j
    if boundary == "zero":
        return None
    if boundary == "circular":
        return j % n
    if boundary == "symmetric":
        j %= 2 * n
        return j if j < n else 2 * n - 1 - j
    if boundary == "reflect":
        if n == 1:
            return 0
        j %= 2 * n - 2
        return j if j < n else 2 * n - 2 - j
    raise ValueError(f"unknown boundary {boundary!r}; choose one of {BOUNDARIES}")


def taps_matrix(rows: Sequence[Sequence[tuple[int, float]]], n: int, boundary: str) -> Tensor:
    """``(len(rows), n)`` matrix from per-row ``(input index, weight)`` taps, folding
    out-of-range indices by ``boundary``."""
    if boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; choose one of {BOUNDARIES}")
    M = torch.zeros(len(rows), n, dtype=torch.float64)
    for i, taps in enumerate(rows):
        for j, w in taps:
            k = fold_index(j, n, boundary)
            if k is not None:
                M[i, k] += w
    return M


def conv_matrix(kernel: Sequence[float], n: int, boundary: str) -> Tensor:
    """``(n, n)`` matrix of a centred 1-D correlation with an odd-length kernel
    (same-size output): ``y_i = sum_t kernel[t] x_{i + t - r}``, ``r = len // 2``."""
    k = [float(v) for v in kernel]
    r = len(k) // 2
    return taps_matrix([[(i + t - r, k[t]) for t in range(len(k))] for i in range(n)], n, boundary)


class SeparableOperator(SVDOperator):
    """``Y_c = M_h X_c M_w^T`` for every channel ``c`` (1-D matrices ``(h, H)`` and ``(w, W)``).

    ``forward``/``adjoint`` use the 1-D matrices; the SVD functions use their SVDs. ``vt``
    lists the ``C*h*w`` coefficients with singular values ``s_h[i] s_w[j]`` first (channel,
    row, column order), then the rest of ``V^T x``. Needs ``h <= H`` and ``w <= W``.
    """

    def __init__(self, mat_h: Tensor, mat_w: Tensor, in_shape: Sequence[int]):
        if in_shape is None or len(in_shape) != 3:
            raise ValueError(f"{type(self).__name__} needs in_shape = [C, H, W], got {in_shape}")
        super().__init__(in_shape)
        C, H, W = self.in_shape
        mats = []
        for name, M, n in (("rows", mat_h, H), ("columns", mat_w, W)):
            M = torch.as_tensor(M, dtype=torch.float64)
            if M.dim() != 2 or M.shape[1] != n or M.shape[0] > n:
                raise ValueError(f"{type(self).__name__}: the 1-D matrix for {name} must be (k, {n}) "
                                 f"with k <= {n}, got {tuple(M.shape)}")
            mats.append(M)
        h, w = mats[0].shape[0], mats[1].shape[0]
        self.out_shape = (C, h, w)
        dtype = torch.get_default_dtype()
        s = []
        for tag, M in zip("hw", mats):
            U, sv, Vt = torch.linalg.svd(M, full_matrices=True)
            self.register_buffer("M" + tag, M.to(dtype))
            self.register_buffer("U" + tag, U.to(dtype))
            self.register_buffer("V" + tag, Vt.T.contiguous().to(dtype))
            s.append(sv)
        sing = (s[0][:, None] * s[1][None, :]).expand(C, h, w).reshape(1, -1)
        self.register_buffer("s", sing.to(dtype))
        grid = torch.arange(C * H * W).view(C, H, W)
        top = grid[:, :h, :w].flatten()
        rest = torch.ones(C * H * W, dtype=torch.bool)
        rest[top] = False
        perm = torch.cat([top, grid.flatten()[rest]])
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    @staticmethod
    def _sandwich(L: Tensor, X: Tensor, R: Tensor) -> Tensor:
        """``L X R^T`` on the last two axes, in the dtype of ``X``."""
        return torch.einsum("ij,bcjk,lk->bcil", L.to(X), X, R.to(X))

    def _check(self, t: Tensor, shape, what: str) -> None:
        expect_shape(t, shape, type(self).__name__, what)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x, self.in_shape, "x")
        return self._sandwich(self.Mh, x, self.Mw)

    def adjoint(self, y: Tensor) -> Tensor:
        self._check(y, self.out_shape, "y")
        return self._sandwich(self.Mh.T, y, self.Mw.T)

    def vt(self, x: Tensor) -> Tensor:
        self._check(x, self.in_shape, "x")
        return self._sandwich(self.Vh.T, x, self.Vw.T).flatten(1)[:, self.perm]

    def v(self, z: Tensor) -> Tensor:
        self._check(z, (self.num_pixels(),), "z")
        Z = z[:, self.inv_perm].reshape(z.shape[0], *self.in_shape)
        return self._sandwich(self.Vh, Z, self.Vw)

    def ut(self, y: Tensor) -> Tensor:
        self._check(y, self.out_shape, "y")
        return self._sandwich(self.Uh.T, y, self.Uw.T).flatten(1)

    def u(self, z: Tensor) -> Tensor:
        self._check(z, (self.s.shape[1],), "z")
        return self._sandwich(self.Uh, z.reshape(z.shape[0], *self.out_shape), self.Uw)

    def singular_values(self) -> Tensor:
        return self.s
