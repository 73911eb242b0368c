"""Small batched linear-algebra helpers (per-sample, no cross-sample coupling)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def bdot(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample inner product, shape ``(B, 1, ..., 1)`` broadcastable to ``a``."""
    d = (a * b).flatten(1).sum(1)
    return d.view(-1, *([1] * (a.dim() - 1)))


def conjugate_gradient(matvec: Callable[[Tensor], Tensor], rhs: Tensor, iters: int = 100,
                       tol: float = 1e-10, x0: Tensor | None = None) -> Tensor:
    """Solve ``M x = rhs`` for a symmetric positive semi-definite ``M``, per sample.

    Started at 0 on a singular ``M`` it converges to the minimum-norm solution.
    """
    x = torch.zeros_like(rhs) if x0 is None else x0.clone()
    r = rhs - matvec(x) if x0 is not None else rhs.clone()
    p = r.clone()
    rs = bdot(r, r)
    scale = bdot(rhs, rhs).clamp_min(1e-30)
    for _ in range(iters):
        if bool((rs <= tol * scale).all()):
            break
        Mp = matvec(p)
        pMp = bdot(p, Mp)
        alpha = torch.where(pMp > 0, rs / pMp.clamp_min(1e-30), torch.zeros_like(rs))
        x = x + alpha * p
        r = r - alpha * Mp
        rs_new = bdot(r, r)
        beta = torch.where(rs > 0, rs_new / rs.clamp_min(1e-30), torch.zeros_like(rs))
        p = r + beta * p
        rs = rs_new
    return x
