"""The (truncated) pseudo-inverse and the noised projection shared by the replacement methods
(ILVR, RePaint, MCG, OT-ODE, Kadkhodaie & Simoncelli).

``A^+_c`` keeps the singular values above ``c`` (``c = 0``: the operator's own ``A^+``):
``A^+_c r = V diag(1/s_i if s_i > c else 0) U^T r``, as DDNM+ / DDRM truncate their spectrum, so that
noisy measurements of ill-conditioned operators (deblurring) do not amplify ``sigma_y / s``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import Problem
from .spectral import ZERO, _pad


def noised_projection(x: Tensor, a_next: Tensor, b_next: Tensor, p: Problem, rng, svd_cutoff: float = 0.0) -> Tensor:
    """``x + A^+ (a' y + b' A z - A x)``: replace the range of ``A^+`` by the forward-diffused
    measurement (ILVR's ``phi(y_t) - phi(x_t)``; exact ``A x = y`` when ``b' = 0``). With
    ``svd_cutoff > 0`` (SVD operators) ``A^+`` is truncated to singular values above it (as DDNM+)."""
    op = p.operator
    target = a_next * p.y
    if float(b_next) > 0:
        target = target + b_next * op(rng.randn(x.shape).to(x))
    return x + pinv(p, target - op(x), svd_cutoff)


def pinv(p: Problem, r: Tensor, svd_cutoff: float = 0.0) -> Tensor:
    """``A^+ r``, truncated to singular values above ``svd_cutoff`` when it is > 0 (SVD operators)."""
    if svd_cutoff > 0:
        sp = p.spectrum(svd_cutoff)
        rb = _pad(p.operator.ut(r), sp.s.shape[-1])
        return sp.v(torch.where(sp.measured, rb / sp.s.clamp_min(ZERO), torch.zeros_like(rb)))
    return p.operator.pinv(r)


def check_cutoff(svd_cutoff) -> float:
    """``svd_cutoff`` as a float, refusing negative or NaN values."""
    if not float(svd_cutoff) >= 0:
        raise ValueError(f"svd_cutoff must be >= 0, got {svd_cutoff}")
    return float(svd_cutoff)


def require_svd_for_cutoff(method, operator) -> None:
    """Refuse ``svd_cutoff > 0`` on an operator without an SVD, naming both."""
    if method.svd_cutoff > 0 and not operator.has_svd:
        raise ValueError(f"{method.name} with svd_cutoff > 0 needs an operator with an SVD, "
                         f"but {operator.describe()} has none")


__all__ = ["check_cutoff", "noised_projection", "pinv", "require_svd_for_cutoff"]
