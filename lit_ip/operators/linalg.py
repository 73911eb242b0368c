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

    Started at 0 on a singular ``M`` it converges to the minimum-norm solution. A sample whose
    search direction meets non-positive curvature (``p^T M p <= 0``: ``M`` is not positive definite
    there) stops at its current iterate.
    """
    x = torch.zeros_like(rhs) if x0 is None else x0.clone()
    r = rhs - matvec(x) if x0 is not None else rhs.clone()
    p = r.clone()
    rs = bdot(r, r)
    scale = bdot(rhs, rhs).clamp_min(1e-30)
    curved = torch.ones_like(rs, dtype=torch.bool)
    for _ in range(iters):
        active = (rs > tol * scale) & curved  # converged samples stop here, whatever the rest does
        if not bool(active.any()):
            break
        Mp = matvec(p)
        pMp = bdot(p, Mp)
        curved = curved & ~(active & (pMp <= 0))
        active = active & curved
        alpha = torch.where(active & (pMp > 0), rs / pMp.clamp_min(1e-30), torch.zeros_like(rs))
        x = x + alpha * p
        r = r - alpha * Mp
        rs_new = bdot(r, r)
        beta = torch.where(active & (rs > 0), rs_new / rs.clamp_min(1e-30), torch.zeros_like(rs))
        p = r + beta * p
        rs = rs_new
    return x


def expect_shape(t: Tensor, shape, owner: str, what: str) -> None:
    """Raise a ValueError naming ``owner`` unless ``t`` has shape ``(B, *shape)``."""
    shape = tuple(int(s) for s in shape)
    if t.dim() != len(shape) + 1 or tuple(t.shape[1:]) != shape:
        raise ValueError(f"{owner} expects {what} of shape (B, {', '.join(map(str, shape))}), "
                         f"got {tuple(t.shape)}")


def householder(e: Tensor) -> Tensor:
    """Symmetric orthogonal ``Q = I - 2 w w^T / |w|^2`` with ``w = e - e_1``, so ``Q e_1 = e``.

    ``e`` is a unit vector of length ``k``; the first row (and column) of ``Q`` is ``e``,
    the others complete it to an orthonormal basis.
    """
    e = e.to(torch.float64)
    k = e.shape[0]
    w = e.clone()
    w[0] -= 1
    nw = float(w @ w)
    eye = torch.eye(k, dtype=torch.float64)
    return eye if nw < 1e-30 else eye - 2 * torch.outer(w, w) / nw


def dense_matrix(op, in_shape) -> Tensor:
    """The ``(m, n)`` matrix of a linear operator, built by applying it to the ``n``
    basis vectors of ``in_shape`` (in float64). For small tests only.

    ``op`` must accept a batch of ``n`` inputs: bind a per-sample family to a single
    index first (its one mask then broadcasts over the batch).
    """
    in_shape = tuple(int(s) for s in in_shape)
    n = 1
    for d in in_shape:
        n *= d
    basis = torch.eye(n, dtype=torch.float64).view(n, *in_shape)
    with torch.no_grad():
        cols = op(basis)
    return cols.reshape(n, -1).T.contiguous()
