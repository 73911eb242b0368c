"""Score-based annealed Langevin dynamics for linear inverse problems (Score-ALD), Jalal, Arvinte,
Daras, Price, Dimakis & Tamir 2021, NeurIPS, "Robust compressed sensing MRI with deep generative
priors" (arXiv:2108.01368), Algorithm 1; the survey form is Daras et al. 2024 (arXiv:2410.00083),
Eq. 3.5.

Annealed Langevin dynamics (NCSN, Song & Ermon 2019) on the posterior at each noise level
``sigma_i`` of the schedule, with the likelihood score approximated by the lifted residual at the
*noisy* state:

    u <- u + alpha_i [ s(u, sigma_i) + A^T (y - A u) / (sigma_y^2 + gamma_i^2) ] + sqrt(2 alpha_i) z,

``K = langevin_steps`` times per level. The state is written in VE coordinates ``u = x_t / a``
(level ``sigma = b / a``), so every path works: the prior score at ``u`` is
``(x0_hat(a u, t) - u) / sigma^2``. Step ``alpha_i = delta sigma_i^2``: NCSN's ``alpha_i = eps
sigma_i^2 / sigma_L^2`` is ``delta = eps / sigma_L^2``. ``gamma_i = gamma sigma_i`` (the paper's ``gamma_t`` is a tuned
annealed parameter; proportional to the level here). Units: ``sigma`` in [0, 1] images
(half the [-1, 1] value); ``delta`` and ``gamma`` are scale-free. Levels where ``a = 0`` (a flow at
``t = 1``) are skipped. The output is the state at the last level (no final denoising step, as
the paper), so it keeps that level's noise ``sigma_L``: it shows on noiseless problems with
``sigma_y < sigma_L`` (``benchmarks/exact_posterior_breadth.md``, sigma_y = 1e-3: cov 79-475 on vp). The paper's MRI operator is complex; here any real linear operator.

Real images (shipped settings ``configs/method/score_ald.yaml``, chosen on 4 training crops with the
natural_ddpm prior; ``benchmarks/method_settings_sweep.md``): mean PSNR (dB): denoise 26.70, sr_4x
13.48, inpaint_70 16.36, inpaint_box 22.05, deblur 22.63, colorize 19.47. It does not beat the best
trivial estimate on: sr_4x 13.48 vs pinv 23.66; deblur 22.63 vs measurement 25.80; colorize 19.47 vs
grey 25.30. Why: 30 Langevin steps in all are far from the paper's thousands: SR, deblurring and
colorization stay below the trivial estimates (the exact-posterior tests, with 20 steps per level,
converge).

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``score_ald`` does not beat the best
baseline by more than the standard error on natural_ddpm sr_4x 15.97 vs pinv 26.65, deblur 25.75 vs
y 28.27, colorize 14.77 vs grey 15.57; faces_ddpm sr_4x 17.02 vs pinv 20.39, deblur 23.47 vs y
23.28; natural_rf sr_4x 15.08 vs pinv 26.65, deblur 24.19 vs y 28.27, colorize 15.30 vs grey 15.57;
faces_rf sr_4x 16.17 vs pinv 20.39, deblur 22.62 vs y 23.28.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..sampling.schedules import LogSNRUniform, Schedule
from .base import Method


class AnnealedLangevin(Method):
    """The shared loop: ``K`` Langevin steps ``u <- u + drift(u) + noise`` at each schedule level, in
    VE coordinates; subclasses give :meth:`update`. One network evaluation per Langevin step."""

    def __init__(self, num_steps: int = 100, langevin_steps: int = 3, delta: float = 0.1,
                 schedule: Optional[Schedule] = None):
        super().__init__(num_steps, schedule)
        if int(langevin_steps) < 1 or not 0 < float(delta) < 2:
            raise ValueError(f"{type(self).__name__} needs langevin_steps >= 1 and 0 < delta < 2, "
                             f"got {langevin_steps}, {delta}")
        self.langevin_steps, self.delta = int(langevin_steps), float(delta)

    def default_schedule(self):
        return LogSNRUniform()           # NCSN's geometric levels

    def levels(self, prior) -> list:
        return [t for t in self.schedule.times(prior.path, self.num_steps) if self.informative(prior, t)]

    def update(self, u, x0, sigma, p, rng):
        """The new ``u`` from the prior's Tweedie estimate ``x0`` at level ``sigma``."""
        raise NotImplementedError

    def initial(self, p, sigma, rng):
        """``u`` at the first level: prior mean plus noise ``sigma``."""
        return p.prior.data_mean + sigma * rng.randn((p.y.shape[0], *p.prior.image_shape)).to(p.y)

    def sample(self, prior, operator, y, rng, noise=None):
        p = self.setup(prior, operator, y, noise)
        p.state.update(self.prepare(p) or {})
        times = self.levels(prior)
        u = None
        with torch.no_grad():
            for t in times:
                a, b = prior.coefficients(t, y)
                sigma = b / a
                u = self.initial(p, sigma, rng) if u is None else u
                for _ in range(self.langevin_steps):
                    u = self.update(u, prior.denoise(a * u, t), sigma, p, rng)
        return u

    def prepare(self, p):
        return None

    def expected_nfe(self, prior):
        return {"nfe": len(self.levels(prior)) * self.langevin_steps, "nfe_backward": 0}


class ScoreALD(AnnealedLangevin):
    """Score-ALD (Jalal et al. 2021): annealed Langevin with ``A^T (y - A u) / (sigma_y^2 + gamma_i^2)``.

    Args:
        num_steps: noise levels (paper: all the levels of its NCSNv2 prior).
        langevin_steps: Langevin steps per level ``K``.
        delta: step ``alpha_i / sigma_i^2`` (see above; < 2 for stability).
        gamma: ``gamma_i / sigma_i``.
    """

    requires = ("linear",)
    gaussian_noise = True

    def __init__(self, num_steps: int = 100, langevin_steps: int = 3, delta: float = 0.1, gamma: float = 1.0,
                 schedule: Optional[Schedule] = None):
        super().__init__(num_steps, langevin_steps, delta, schedule)
        if not float(gamma) > 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.gamma = float(gamma)

    def update(self, u, x0, sigma, p, rng):
        alpha = self.delta * sigma ** 2
        lik = p.operator.adjoint(p.y - p.operator(u)) / (p.sigma ** 2 + (self.gamma * sigma) ** 2)
        return u + self.delta * (x0 - u) + alpha * lik + math.sqrt(2 * self.delta) * sigma * rng.randn(u.shape).to(u)
