"""Denoising diffusion restoration models (DDRM), Kawar, Elad, Ermon & Song 2022, NeurIPS, Eqs. 7-8.

In the spectral coordinates of ``A = U S V^T`` (``x_bar = V^T x``, ``y_bar = S^+ U^T y``) and the
VE view of the path (``x / a``, ``sigma_t = b / a``), one step to the next level ``sigma'`` is, per
coordinate ``i`` with ``x0_bar = V^T x0_hat`` and ``eps_bar = V^T (x_t - a x0_hat) / b``:

    s_i = 0:                   x0_bar + sqrt(1 - eta^2) sigma' eps_bar                          + eta sigma' z
    sigma' < sigma_y / s_i:    x0_bar + sqrt(1 - eta^2) sigma' (y_bar - x0_bar) / (sigma_y / s_i) + eta sigma' z
    sigma' >= sigma_y / s_i:   (1 - eta_b) x0_bar + eta_b y_bar + sqrt(sigma'^2 - eta_b^2 sigma_y^2 / s_i^2) z

and ``x_next = a' V x_bar'`` (so ``a' sigma' = b'``; everything stays finite at ``a = 0``). The
last step (``sigma' = 0``) returns ``x0_hat`` except, for noiseless data, ``eta_b y_bar`` on the
measured coordinates.
Unlike the paper, the first state is the prior's initial noise rather than DDRM's own
initialisation from ``y_bar`` (the difference vanishes as ``sigma_T`` grows).

Measured on real images (benchmarks/sweep_methods.md: natural_ddpm, 4 training crops, shipped
settings of configs/method/ddrm.yaml, 25 steps, posterior mean of 4 samples, PSNR dB): beats the
trivial estimate on denoise (29.6 vs 20.3), sr_4x (24.2 vs 22.2), inpainting (23.7 / 28.2 vs 7.1 /
12.8), deblur (28.6 vs 25.1); not colorization (20.7 vs 24.4 for the luminance image, 4 samples;
the prior's over-saturated colours and too few samples: the mean of 8 gives 24.05, one sample 16.3,
benchmarks/colorization.md).

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``ddrm`` does not beat the best
baseline by more than the standard error on natural_ddpm colorize 16.94 vs grey 15.57 (8 samples:
17.00, beats it). It beats it on every task run with faces_ddpm (5 of 5 tasks), natural_rf (6 of 6
tasks), faces_rf (5 of 5 tasks).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..priors.parameterization import eps_from_x0
from ..sampling.schedules import Schedule, UniformTime
from .base import GuidedMethod


class DDRM(GuidedMethod):
    """DDRM (Kawar et al. 2022): spectral-space updates; needs an operator with an SVD.

    Args:
        num_steps: network evaluations (paper: 20).
        schedule: time grid (default: the code's uniform skip, ``UniformTime(endpoint=False)``).
        eta: DDRM's eta, the fraction ``eta * sigma'`` of fresh noise (paper: 0.85). It
            plays the role of the loop's eta but is DDRM's parameterisation, not DDIM's.
        eta_b: weight of the measurement where it is less noisy than the state (paper: 1).
        svd_cutoff: singular values below it count as null space (truncated SVD, as DDRM's
            code does for deblurring); 0 = exact SVD.
    """

    requires = ("svd",)
    gaussian_noise = True

    def __init__(self, num_steps: int = 20, eta: float = 0.85, eta_b: float = 1.0,
                 svd_cutoff: float = 0.0, schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, schedule)
        if not float(svd_cutoff) >= 0:
            raise ValueError(f"svd_cutoff must be >= 0, got {svd_cutoff}")
        self.svd_cutoff = float(svd_cutoff)
        if not 0 <= float(eta_b) <= 1:
            raise ValueError(f"DDRM eta_b must be in [0, 1], got {eta_b}")
        self.eta_b = float(eta_b)

    def default_schedule(self):
        """The DDRM code's uniform skip ``0, T/N, ..., (N-1) T/N``."""
        return UniformTime(endpoint=False)

    def step(self, x, x0_c, s, p, rng):
        sp, sy, eta, eta_b = p.spectrum(self.svd_cutoff), p.sigma, self.eta, self.eta_b
        sig = s.b_next / s.a_next                              # sigma' in the VE view
        x0b = sp.vt(x0_c)
        epsb = sp.vt(eps_from_x0(x0_c, x, s.a, s.b))
        z = sp.vt(rng.randn(x.shape).to(x))                    # V^T z is standard normal too
        keep = (1 - eta ** 2) ** 0.5 * sig
        null = x0b + keep * epsb + eta * sig * z
        below = sp.measured & (sig * sp.s < sy)                # sigma' < sigma_y / s
        soft = x0b + keep * sp.s / max(sy, 1e-300) * (sp.ybar - x0b) + eta * sig * z
        std = torch.sqrt((sig ** 2 - eta_b ** 2 * sy ** 2 / sp.s.clamp_min(1e-300) ** 2).clamp_min(0))
        hard = (1 - eta_b) * x0b + eta_b * sp.ybar + std * z
        xb = torch.where(below, soft, torch.where(sp.measured, hard, null))
        return s.a_next * sp.v(xb)
