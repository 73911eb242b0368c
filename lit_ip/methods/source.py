"""Methods on priors whose noise is not ``N(0, I)``: a flow from a restricted Gaussian source
``x1 = mu + U z``, ``z ~ N(0, I_k)`` (:mod:`lit_ip.priors.subspace_source`).

On the path ``x_t = a x0 + b x1`` with ``x1`` independent of ``(x0, y)``, the conditional process given
``y`` is the same interpolation from ``p(x0 | y)`` to the source, so its velocity is
``E[x1 - x0 | x_t, y]`` and, since ``E[x1 | x_t, y] = (x_t - a E[x0 | x_t, y]) / b``, the deterministic
step (DDIM ``eta = 0`` = flow Euler) with ``x0_c = E[x0 | x_t, y]`` is exact for *any* source. What changes
is Tweedie's formula: for noise ``b x1`` with ``Cov[x1] = S`` (here ``S = U U^T``),

    E[x0 | x_t, y] = E[x0 | x_t] + (b^2 / a) S grad_{x_t} log p(y | x_t),

and the isotropic-noise formulas (the score ``-eps / b``, PiGDM's ``r_t^2 I``, DPS, fresh ``N(0, I)``
noise in a stochastic step) do not hold. A Gaussian data model ``N(m, v I)`` gives
``Cov[x0 | x_t] = v b^2 S (a^2 v I + b^2 S)^{-1}``: ``r_t^2 = v b^2 / (a^2 v + b^2)`` (PiGDM's) on the
range of ``U`` and 0 outside it for ``a > 0`` -- given ``x_t`` the component of ``x0`` outside the
subspace is known exactly, ``P_perp x0 = P_perp (x_t - b mu) / a``.

Consequence (exact for the true velocity): every Euler step keeps ``P_perp x0`` at its value in the
initial state, so a sampler from such a source only moves the ``k`` subspace coordinates; the rest is
whatever the initial state put there. Methods declare whether they hold on such priors
(:meth:`Method.accepts_source`); the others are refused by :func:`check_source`.
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor

from ..operators.linalg import conjugate_gradient


def source_of(prior):
    """The restricted source of ``prior`` (a :class:`SubspaceGaussianSource`), or None for ``N(0, I)``."""
    return getattr(prior, "source_model", None)


def check_source(method, prior) -> None:
    """Refuse a prior with a restricted source unless ``method`` holds for it."""
    src = source_of(prior)
    if src is not None and not method.accepts_source(prior):
        raise ValueError(f"{method.name} assumes isotropic N(0, I) noise, but the prior {type(prior).__name__} "
                         f"starts from a restricted Gaussian source (k = {src.k}); its formulas (score -eps/b, "
                         f"isotropic fresh noise) do not hold there. Use OTODE (source-aware) or Unconditional "
                         f"with eta = 0 (lit_ip/methods/source.py)")


def project(source, v: Tensor) -> Tensor:
    """``U U^T v`` for images ``v`` (the source covariance ``S`` applied)."""
    U = source.basis.to(v)
    return ((v.flatten(1) @ U) @ U.T).view_as(v)


def likelihood_solve(op, source: Optional[object], r: Tensor, r2, sigma2, iters: int, tol: float) -> Tensor:
    """``(A C A^T + sigma_y^2 I)^{-1} r`` with the Gaussian model's ``C = r_t^2 S``: ``S = I`` without a
    source (``op.gram_solve``), ``S = U U^T`` with one (conjugate gradients; identity plus rank ``k``,
    so at most ``k + 1`` iterations in exact arithmetic)."""
    if source is None:
        return op.gram_solve(r, r2, sigma2, iters, tol)
    if not float(sigma2) > 0:
        raise ValueError("with a restricted source A C A^T has rank k: noiseless measurements give no finite "
                         "likelihood score (use sigma_y > 0)")
    return conjugate_gradient(lambda u: r2 * op(project(source, op.adjoint(u))) + sigma2 * u, r,
                              iters=max(int(iters), source.k + 2), tol=tol)
