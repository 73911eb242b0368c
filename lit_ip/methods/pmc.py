"""Plug-and-play Monte Carlo (PMC): Sun, Wu, Chen, Feng & Bouman 2024, "Provable probabilistic imaging
using score-based generative priors" (arXiv:2310.10835; the survey of Daras et al. 2024,
arXiv:2410.00083, Sec. 3.3.3, Eqs. 3.63-3.71): annealed Langevin dynamics on the posterior with the
prior score from the diffusion model's denoiser at a decreasing noise level ``sigma_k``.

With ``g(x) = -log p(y | x)`` (the data fit), ``h_sigma`` the MMSE denoiser at VE level ``sigma`` and
``grad log p_sigma(x) = (h_sigma(x) - x) / sigma^2`` (Tweedie), one iteration at level ``sigma_k`` with
step ``gamma_k`` is

* PMC-RED:  ``x' = x - gamma (grad g(x) - grad log p_sigma(x)) + sqrt(2 gamma) z``;
* PMC-PnP:  ``x' = x - gamma (grad g(x) - grad log p_sigma(x - gamma grad g(x))) + sqrt(2 gamma) z``
  (the score at the gradient-stepped point, the proximal-gradient form of Eq. 3.67).

The denoiser at level ``sigma`` is the prior's at the path time ``t`` with ``b(t)/a(t) = sigma``:
``h_sigma(x) = prior.denoise(a(t) x, t)``. The levels are the method's schedule from ``sigma_max``
down (``steps_per_level`` iterations each); ``gamma_k = step_size * min(sigma_k^2, sigma_y^2 / ||A||^2)``.

Paper vs code: the paper tunes a constant step per task; capping ``gamma`` by ``sigma_y^2 / ||A||^2``
keeps the likelihood step stable on every problem (``||A||`` from the SVD, else 1). In PMC-PnP the
prior term's weight ``sigma^2 / gamma`` of Eq. 3.67 is set to 1 so that the drift is the posterior
score for any step (the paper's limit ``gamma = sigma^2``). Noiseless measurements are refused (the
Langevin drift needs ``sigma_y > 0``). Units: images in [0, 1], ``sigma`` and ``sigma_y`` in [0, 1] units.

Real images, shipped settings (``configs/method/pmc_pnp.yaml``: step_size 1.9, ``pmc_red.yaml``: 0.9;
both ``sigma_max`` 0.3, 100 levels x 2 iterations), chosen on 4 training crops
(``benchmarks/method_settings_sweep.md``, rounds 4 / 4b). The cap makes the prior's drift
``gamma / sigma_k^2 = step_size sigma_y^2 / sigma_k^2`` tiny at high levels (3e-4 at ``sigma_k = 1``
for ``sigma_y = 0.025``) while each iteration adds noise ``sqrt(2 gamma) ~ sigma_y``: from
``sigma_max = 1`` with step_size 0.5 the unobserved pixels never leave the initial noise (training
crops: inpaint_70 8.96 dB, deblur 12.2 vs measurement 25.8). Starting at ``sigma_max = 0.3`` with the
largest stable step (the data step contracts by ``1 - step_size``; RED's prior drift adds
``step_size`` below ``sigma_y``, so RED diverges at 1.5: denoise 11.8 dB) gives PMC-PnP denoise 27.3,
sr_4x 22.0 (pinv 23.7), inpaint_70 22.3, inpaint_box 20.5, deblur 27.6, colorize 24.4 (grey 25.3):
it still loses to the pseudo-inverse on 4x super-resolution and to grey on colorization, because
200 Langevin iterations at these step sizes do not mix over the null space (the paper runs
thousands of iterations per task). Held-out crops (``benchmarks/real_images.md``, natural_ddpm, posterior
mean of 2 samples), PMC-PnP / PMC-RED: denoise 28.37 / 28.86 (y 20.44), sr_4x 23.99 / 25.52 (pinv
26.65), inpaint_70 27.02 / 23.85, inpaint_box 26.20 / 24.94, deblur 29.57 / 29.72 (y 28.27), colorize
15.62 / 14.89 (grey 15.57): the same two losses.

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``pmc_pnp`` does not beat the best
baseline by more than the standard error on natural_ddpm sr_4x 23.99 vs pinv 26.65, colorize 15.62
vs grey 15.57; natural_rf sr_4x 22.50 vs pinv 26.65, deblur 28.06 vs y 28.27, colorize 16.03 vs grey
15.57. It beats it on every task run with faces_ddpm (5 of 5 tasks), faces_rf (5 of 5 tasks).
``pmc_red`` does not beat the best baseline by more than the standard error on natural_ddpm sr_4x
25.52 vs pinv 26.65 (8 samples: 26.91, still does not), colorize 14.89 vs grey 15.57; natural_rf
sr_4x 23.99 vs pinv 26.65, colorize 15.66 vs grey 15.57. It beats it on every task run with
faces_ddpm (5 of 5 tasks), faces_rf (5 of 5 tasks).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..sampling.schedules import Schedule, time_at_level
from .base import Method


class PMCRED(Method):
    """PMC-RED (Sun et al. 2024): annealed Langevin with the RED form of the prior score.

    Args:
        num_steps: noise levels of the schedule.
        steps_per_level: Langevin iterations per level (one prior call each).
        step_size: ``gamma_k / min(sigma_k^2, sigma_y^2 / ||A||^2)``.
        sigma_max: the first (largest) level, in [0, 1] image units.
    """

    gaussian_noise = True
    variant = "red"

    def __init__(self, num_steps: int = 100, steps_per_level: int = 5, step_size: float = 0.5,
                 sigma_max: float = 1.0, schedule: Optional[Schedule] = None):
        super().__init__(num_steps, schedule)
        if int(steps_per_level) < 1 or not float(step_size) > 0 or not float(sigma_max) > 0:
            raise ValueError(f"{self.name} needs steps_per_level >= 1, step_size > 0 and sigma_max > 0, "
                             f"got {steps_per_level}, {step_size}, {sigma_max}")
        self.steps_per_level, self.step_size, self.sigma_max = int(steps_per_level), float(step_size), float(sigma_max)

    def _times(self, prior):
        t0 = time_at_level(prior.path, self.sigma_max)
        return [t for t, _ in self.pairs(prior, t0)]

    def sample(self, prior, operator, y, rng, noise=None):
        p = self.setup(prior, operator, y, noise)
        sigma_y = p.sigma
        if sigma_y <= 0:
            raise ValueError(f"{self.name} needs noisy measurements (sigma_y > 0): its Langevin drift is "
                             f"the gradient of log N(y; A x, sigma_y^2)")
        lip = float(p.spectrum().s.max()) ** 2 if operator.has_svd else 1.0
        x = prior.data_mean + self.sigma_max * rng.randn((y.shape[0], *prior.image_shape)).to(y)
        for t in self._times(prior):
            a, b = prior.coefficients(t, x)
            level2 = (b / a) ** 2
            gamma = self.step_size * min(float(level2), sigma_y ** 2 / max(lip, 1e-12))
            for _ in range(self.steps_per_level):
                grad_g = p.fit.grad(x)                       # gradient of -log p(y | x)
                u = x - gamma * grad_g if self.variant == "pnp" else x
                with torch.no_grad():
                    score = (prior.denoise(a * u, t) - u) / level2
                x = (x - gamma * grad_g + gamma * score + (2 * gamma) ** 0.5 * rng.randn(x.shape).to(x)).detach()
        return x

    def expected_nfe(self, prior):
        return {"nfe": len(self._times(prior)) * self.steps_per_level, "nfe_backward": 0}


class PMCPnP(PMCRED):
    """PMC-PnP (Sun et al. 2024): the prior score at the gradient-stepped point ``x - gamma grad g(x)``."""

    variant = "pnp"
