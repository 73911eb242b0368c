"""DiffPIR: denoising diffusion models for plug-and-play image restoration, Zhu, Zhang, Liang,
Cao, Wen, Timofte & Van Gool 2023 (CVPR), Algorithm 1.

Half-quadratic splitting with the diffusion prior as the denoiser. At every step, after the
Tweedie estimate ``x0_hat = E[x0 | x_t]`` (the prior sub-problem, Eq. 11), the data sub-problem
(Eq. 13) is a proximal step

    x0_c = argmin_x ||y - A x||^2 + rho_t ||x - x0_hat||^2,    rho_t = lambda sigma_y^2 / sigma_bar_t^2,

with ``sigma_bar_t = sqrt(1 - abar_t) / sqrt(abar_t) = b / a``. For a linear operator it is
``(A^T A + rho_t I)^{-1} (A^T y + rho_t x0_hat)``: in the SVD basis, per coordinate with singular
value ``s``, ``(s U^T y + rho x0_bar) / (s^2 + rho)`` (null space untouched); by conjugate
gradients on ``(A^T A + rho I) d = A^T (y - A x0_hat)`` otherwise. With ``sigma_y = 0`` (``rho = 0``)
it is the projection ``x0_hat + A^+ (y - A x0_hat)``. Then noise is re-injected (Eq. 15):

    eps_hat = (x_t - a x0_c) / b,
    x_next  = a' x0_c + b' (sqrt(1 - zeta) eps_hat + sqrt(zeta) z),    z ~ N(0, I).

Written in the path's ``(a, b)`` it runs unchanged on VP/DDPM and rectified-flow priors (at
``a = 0``, the first step of a flow, ``rho = 0`` and the step is a projection of the prior mean).
"""
from __future__ import annotations

import torch

from ..operators.linalg import conjugate_gradient
from ..priors.parameterization import eps_from_x0
from .base import GuidedMethod
from .spectral import Spectrum, gaussian_sigma


class DiffPIR(GuidedMethod):
    """DiffPIR (Zhu et al. 2023): HQS data proximal step on ``x0_hat`` plus zeta noise re-injection.

    Needs a linear operator (closed form through the SVD when the operator has one, conjugate
    gradients otherwise) and Gaussian measurement noise.

    Args:
        num_steps: network evaluations (paper: 100).
        lam: lambda in ``rho_t = lambda sigma_y^2 / sigma_bar_t^2`` (paper: about 6 to 8).
        zeta: fraction of fresh noise in the re-injection, in [0, 1] (paper: 0.3 for
            deblurring and super-resolution, 1.0 for inpainting).
        cg_iters, cg_tol: conjugate-gradient budget for operators without an SVD.
    """

    requires = ("linear",)

    def __init__(self, num_steps: int = 100, lam: float = 7.0, zeta: float = 0.3,
                 cg_iters: int = 50, cg_tol: float = 1e-10):
        super().__init__(num_steps, eta=0.0)   # the loop's eta is unused: zeta sets the noise
        if not float(lam) > 0:
            raise ValueError(f"DiffPIR lambda must be > 0, got {lam}")
        if not 0 <= float(zeta) <= 1:
            raise ValueError(f"DiffPIR zeta must be in [0, 1], got {zeta}")
        self.lam, self.zeta = float(lam), float(zeta)
        self.cg_iters, self.cg_tol = int(cg_iters), float(cg_tol)

    def prepare(self, p):
        spectrum = Spectrum(p.operator, p.y) if p.operator.has_svd else None
        return dict(sigma=gaussian_sigma(p.noise, self.name), spectrum=spectrum)

    def rho(self, a, b, sigma: float):
        """``rho_t = lambda sigma_y^2 a^2 / b^2`` (finite at ``a = 0``)."""
        return self.lam * sigma ** 2 * a ** 2 / b ** 2

    def correct(self, s, p):
        return self.proximal(s.x0, self.rho(s.a, s.b, p.extra["sigma"]), p), None

    def proximal(self, x0, rho, p):
        """``argmin_x ||y - A x||^2 + rho ||x - x0||^2`` per sample."""
        op, sp = p.operator, p.extra["spectrum"]
        if sp is not None:
            xb = sp.vt(x0)
            fit = (sp.s * sp.uy + rho * xb) / (sp.s ** 2 + rho).clamp_min(1e-300)
            return sp.v(torch.where(sp.measured, fit, xb))
        rhs = op.adjoint(p.y - op(x0))
        d = conjugate_gradient(lambda v: op.adjoint(op(v)) + rho * v, rhs, iters=self.cg_iters, tol=self.cg_tol)
        return x0 + d

    def step(self, x, x0_c, s, p, rng):
        if float(s.b_next) == 0:
            return x0_c
        eps = eps_from_x0(x0_c, x, s.a, s.b)
        out = s.a_next * x0_c + s.b_next * (1 - self.zeta) ** 0.5 * eps
        if self.zeta > 0:
            out = out + s.b_next * self.zeta ** 0.5 * rng.randn(x.shape).to(x)
        return out
