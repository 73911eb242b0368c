"""A general dense-matrix operator for small problems, with its exact SVD."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from .base import SVDOperator
from .linalg import expect_shape


class DenseMatrixOperator(SVDOperator):
    """``y = M vec(x)`` for an ``(m, n)`` matrix ``M`` with ``n = prod(in_shape)``.

    The SVD ``M = U diag(s) V^T`` is computed once (``torch.linalg.svd``), so
    ``vt``, ``u`` and friends are exact. Output shape is ``(m,)`` per sample.
    """

    def __init__(self, matrix: Tensor, in_shape: Sequence[int]):
        super().__init__(in_shape)
        M = torch.as_tensor(matrix, dtype=torch.float64)
        n = int(math.prod(self.in_shape))
        if M.dim() != 2 or M.shape[1] != n:
            raise ValueError(f"matrix must have shape (m, {n}) for in_shape {self.in_shape}, got {tuple(M.shape)}")
        U, s, Vh = torch.linalg.svd(M, full_matrices=True)
        m = M.shape[0]
        s_full = torch.zeros(m, dtype=M.dtype)
        s_full[: s.shape[0]] = s
        self.register_buffer("matrix", M)
        self.register_buffer("U", U)
        self.register_buffer("Vh", Vh)
        self.register_buffer("s", s_full)

    def forward(self, x):
        self.check_input(x)
        return (x.flatten(1).to(self.matrix) @ self.matrix.T).to(x.dtype)

    def adjoint(self, y):
        expect_shape(y, (self.matrix.shape[0],), type(self).__name__, "y")
        return (y.to(self.matrix) @ self.matrix).to(y.dtype).view(y.shape[0], *self.in_shape)

    def vt(self, x):
        self.check_input(x)
        return (x.flatten(1).to(self.Vh) @ self.Vh.T).to(x.dtype)

    def v(self, z):
        return (z.to(self.Vh) @ self.Vh).to(z.dtype).view(z.shape[0], *self.in_shape)

    def ut(self, y):
        return (y.to(self.U) @ self.U).to(y.dtype)

    def u(self, z):
        return (z.to(self.U) @ self.U.T).to(z.dtype)

    def singular_values(self):
        return self.s[None].to(torch.get_default_dtype())
