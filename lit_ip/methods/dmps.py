"""Diffusion model based posterior sampling (DMPS), Meng & Kabashima (Theorem 1, Corollary 2,
Algorithms 1-2).

Assuming an uninformative prior, ``p(x0 | x_t) ~= N(x_t / a, (b / a)^2 I)`` (Eq. 15), the
noise-perturbed pseudo-likelihood score is closed-form (Eq. 19, via ``A = U S V^T``):

    s_y = (1/a) V S (sigma_y^2 I + (b/a)^2 S^2)^{-1} U^T (y - A x_t / a)
        = V [ s (a U^T y - s V^T x_t) / (a^2 sigma_y^2 + b^2 s^2) ]       (no 1/a: finite at a = 0).

No network backward is needed. It enters the shared loop as the posterior-score substitution
``x0_c = x0_hat + lambda (b^2 / a) s_y``. This is Eqs. 24-27: replacing the prior score by
``score + lambda s_y`` in a DDPM step adds ``lambda (1 - alpha_t) / sqrt(alpha_t) s_y`` (Eq. 26),
and in our step the coefficient of ``x0_c`` times ``b^2 / a`` is exactly
``sqrt(abar_{t-1}) beta_t / (1 - abar_t) * (1 - abar_t) / sqrt(abar_t) = beta_t / sqrt(alpha_t)``;
on the flow path the Euler step of the substituted velocity is Eq. 27.

Measured on real images (benchmarks/sweep_methods.md: natural_ddpm, 4 training crops, shipped
settings of configs/method/dmps.yaml, 25 steps, scale 1.0, posterior mean of 4 samples, PSNR dB):
beats the trivial estimate on denoise (27.7 vs 20.3), sr_4x (23.7 vs 22.2), inpainting (19.1 / 24.8
vs 7.1 / 12.8; speckle remains, the paper's scale 1.75 gives 17.2 / 16.9 single-sample), deblur
(28.3 vs 25.1); not colorization (20.2 vs 24.4 for the luminance image, cause not established).

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``dmps`` beats the best baseline on
every task run with natural_ddpm (6 of 6 tasks), faces_ddpm (5 of 5 tasks), natural_rf (6 of 6
tasks), faces_rf (5 of 5 tasks).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..sampling.schedules import Schedule
from .base import GuidedMethod


class DMPS(GuidedMethod):
    """DMPS (Meng & Kabashima): closed-form pseudo-likelihood score through the SVD.

    At ``a = 0`` (the first step of a flow that starts at t = 1) the state carries no
    information about ``x0``: the exact likelihood score is 0, while ``(b^2 / a) s_y`` diverges
    because Assumption 1 breaks down there; that step is taken without guidance.

    Args:
        num_steps: network evaluations (paper: 1000 DDPM, 50 flow).
        eta: DDIM stochasticity (1 = the paper's DDPM version, 0 = its flow Euler version).
        scale: lambda (paper: 1.75 for the DDPM version, Algorithm 1; 2.0 for the flow version,
            Algorithm 2, which a config for a flow prior sets).
    """

    requires = ("svd",)

    def __init__(self, num_steps: int = 1000, eta: float = 1.0, scale: float = 1.75,
                 schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, schedule)
        if not float(scale) > 0:
            raise ValueError(f"DMPS scale lambda must be > 0, got {scale}")
        self.scale = float(scale)

    def estimate(self, s, p):
        a, b = s.a, s.b
        if float(a) == 0:
            return s.x0
        sp, sigma, lam = p.spectrum(), p.sigma, self.scale
        den = a * (a ** 2 * sigma ** 2 + b ** 2 * sp.s ** 2)
        coef = torch.where(sp.measured, lam * b ** 2 * sp.s / den.clamp_min(1e-300), torch.zeros_like(sp.s))
        return s.x0 + sp.v(coef * (a * sp.uy - sp.s * sp.vt(s.x)))
