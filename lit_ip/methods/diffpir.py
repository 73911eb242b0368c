"""Denoising diffusion models for plug-and-play image restoration (DiffPIR), Zhu, Zhang, Liang,
Cao, Wen, Timofte & Van Gool 2023, CVPR workshops (arXiv:2305.08995), Algorithm 1.

Half-quadratic splitting with the diffusion prior as the denoiser. At every step, after the
Tweedie estimate ``x0_hat = E[x0 | x_t]`` (the prior sub-problem, Eq. 11), the data sub-problem
(Eq. 13) is a proximal step

    x0_c = argmin_x ||y - A x||^2 + rho_t ||x - x0_hat||^2,    rho_t = lambda sigma_y^2 / sigma_bar_t^2,

with ``sigma_bar_t = sqrt(1 - abar_t) / sqrt(abar_t)`` the *network's* noise level ([-1, 1] image
units) and ``sigma_y`` the measurement noise of [0, 1] images, as the paper states its noise levels
and as its code computes ``rho``. Our path is in [0, 1] units, ``b = b_net / 2``, so
``sigma_bar_t = 2 b / a`` and

    rho_t = lambda sigma_y^2 a^2 / (4 b^2)        (lambda in the paper's units; the paper: 7).

(Writing ``rho`` with our ``b / a`` instead would make our lambda a quarter of the paper's.) For a linear operator it is
``(A^T A + rho_t I)^{-1} (A^T y + rho_t x0_hat)``: in the SVD basis, per coordinate with singular
value ``s``, ``(s U^T y + rho x0_bar) / (s^2 + rho)`` (null space untouched); by conjugate
gradients on ``(A^T A + rho I) d = A^T (y - A x0_hat)`` otherwise. With ``sigma_y = 0`` (``rho = 0``)
it is the projection ``x0_hat + A^+ (y - A x0_hat)``. Then noise is re-injected (Eq. 15):

    eps_hat = (x_t - a x0_c) / b,
    x_next  = a' x0_c + b' (sqrt(1 - zeta) eps_hat + sqrt(zeta) z),    z ~ N(0, I).

The re-injection is the generic step with fresh-noise std ``c = sqrt(zeta) b'`` (the
``noise_std`` hook); the proximal step is the operator's :meth:`prox_l2`. The default schedule
is the code's "quad" skip ``t = T - sqrt(linspace(0, T^2, N))`` (``PowerTime(0.5, reverse=True)``).
Written in the path's ``(a, b)`` it runs unchanged on VP/DDPM and rectified-flow priors (at
``a = 0``, the first step of a flow, ``rho = 0`` and the step is a projection of the prior mean).

Measured on real images (benchmarks/sweep_methods.md: natural_ddpm, 4 training crops, shipped
settings of configs/method/diffpir.yaml: the paper's lambda = 7 with zeta = 1.0, 25 steps, posterior
mean of 4 samples, PSNR dB): beats the trivial estimate on denoise (29.3 vs 20.3), sr_4x (24.4 vs
22.2), inpainting (26.1 / 30.0 vs 7.1 / 12.8), deblur (28.8 vs 25.1); colorization 24.3 vs 24.4 for
the luminance image (a tie; the best method of the registry there). The old lam = 7 in our b units
is the paper's 28: 25.0 mean over the tasks vs 25.9.

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``diffpir`` does not beat the best
baseline by more than the standard error on natural_ddpm colorize 16.56 vs grey 15.57 (8 samples:
16.85, beats it). It beats it on every task run with faces_ddpm (5 of 5 tasks), natural_rf (6 of 6
tasks), faces_rf (5 of 5 tasks).
"""
from __future__ import annotations

from typing import Optional

from ..sampling.schedules import PowerTime, Schedule
from .base import GuidedMethod


class DiffPIR(GuidedMethod):
    """DiffPIR (Zhu et al. 2023): HQS data proximal step on ``x0_hat`` plus zeta noise re-injection.

    Needs a linear operator (closed form through the SVD when the operator has one, conjugate
    gradients otherwise) and Gaussian measurement noise.

    Args:
        num_steps: network evaluations (paper: 100).
        lam: lambda in ``rho_t = lambda sigma_y^2 / sigma_bar_t^2``, the paper's units (``sigma_bar_t`` of
            [-1, 1] images, ``sigma_y`` of [0, 1] images: ``rho = lam sigma_y^2 a^2 / (4 b^2)``;
            paper: 7, "about 6 to 8").
        zeta: fraction of fresh noise in the re-injection, in [0, 1] (paper: 0.3 for
            deblurring and super-resolution, 1.0 for inpainting).
        cg_iters, cg_tol: conjugate-gradient budget for operators without an SVD.
        schedule: time grid (default: the code's "quad" skip, ``PowerTime(0.5, reverse=True)``).
    """

    requires = ("linear",)
    gaussian_noise = True

    def __init__(self, num_steps: int = 100, lam: float = 7.0, zeta: float = 0.3,
                 cg_iters: int = 50, cg_tol: float = 1e-10, schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta=0.0, schedule=schedule)
        if not float(lam) > 0:
            raise ValueError(f"DiffPIR lambda must be > 0, got {lam}")
        if not 0 <= float(zeta) <= 1:
            raise ValueError(f"DiffPIR zeta must be in [0, 1], got {zeta}")
        self.lam, self.zeta = float(lam), float(zeta)
        self.cg_iters, self.cg_tol = int(cg_iters), float(cg_tol)
        del self.eta                                   # zeta, not DDIM's eta, sets the step noise

    def default_schedule(self):
        return PowerTime(power=0.5, reverse=True)

    def rho(self, a, b, sigma: float):
        """``rho_t = lambda sigma_y^2 / sigma_bar_t^2 = lambda sigma_y^2 a^2 / (4 b^2)`` (finite at ``a = 0``)."""
        return self.lam * sigma ** 2 * a ** 2 / (4 * b ** 2)

    def estimate(self, s, p):
        return p.operator.prox_l2(s.x0, p.y, self.rho(s.a, s.b, p.sigma), self.cg_iters, self.cg_tol)

    def noise_std(self, a, b, a_next, b_next):
        """``c = sqrt(zeta) b'``: ``x' = a' x0_c + b' (sqrt(1 - zeta) eps_hat + sqrt(zeta) z)`` (Eq. 15)."""
        return self.zeta ** 0.5 * b_next
