"""PnP-DM: Wu, Sun, Chen, Zhang, Yue & Bouman 2024, "Principled probabilistic imaging using diffusion
models as plug-and-play priors" (NeurIPS 2024, arXiv:2405.18782): split Gibbs sampling of
``p(x, z | y) ~ p(x) exp(-||x - z||^2 / (2 rho^2)) p(y | z)`` with an annealed coupling ``rho``.

Each iteration ``k`` with coupling ``rho_k = max(rho_min, rho_max * decay^k)``:

* likelihood step: ``z ~ p(z | x, y) ~ N(y; A z, sigma_y^2) N(z; x, rho^2)``, a Gaussian that is
  diagonal in the singular basis: per coordinate precision ``s^2 / sigma_y^2 + 1 / rho^2`` and
  mean ``(s U^T y / sigma_y^2 + x_bar / rho^2) / precision`` (``sigma_y = 0``: ``z_bar = y_bar`` on
  the measured coordinates);
* prior step: ``x ~ p(x | z) ~ p(x) N(z; x, rho^2)``, the posterior of a denoising problem at VE
  level ``rho``, sampled by the diffusion model's reverse process started at the time ``t_rho``
  with ``b/a = rho`` from ``x_t = a(t_rho) z`` (``prior_steps`` DDPM ancestral steps of the schedule).

The output is the last ``x``. Paper vs code: the paper's prior step is the EDM stochastic sampler;
here it is the schedule's DDPM ancestral steps (any lit_ip schedule, on any path). Units: ``rho``
and ``sigma_y`` in [0, 1] image units (the paper's ``rho`` on [-1, 1] images is twice ours).

Real images: the shipped settings (``configs/method/pnp_dm.yaml``: 30 iterations of 10 prior steps,
``rho`` 1.0 -> 0.02, decay 0.9) won against ``rho_max`` 0.5 / decay 0.85 on 4 training crops
(``benchmarks/method_settings_sweep.md``, round 4; one sample beats the trivial estimate on all six
tasks, colorize 26.42 vs grey 25.30). On the 8 held-out crops (``benchmarks/real_images.md``,
natural_ddpm, posterior mean of 2 samples) it beats the best baseline on every task: denoise 29.30 vs
20.44, sr_4x 27.01 vs pinv 26.65, inpaint_70 28.76, inpaint_box 30.85, deblur 30.61 vs y 28.27,
colorize 17.01 vs grey 15.57 dB.

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``pnp_dm`` does not beat the best
baseline by more than the standard error on natural_rf sr_4x 25.14 vs pinv 26.65 (8 samples: 26.46,
still does not); faces_rf sr_4x 20.72 vs pinv 20.39. It beats it on every task run with natural_ddpm
(6 of 6 tasks), faces_ddpm (5 of 5 tasks).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..sampling.schedules import Schedule, time_at_level
from ..sampling.steps import ddim_step
from .base import Method


class PnPDM(Method):
    """PnP-DM (Wu et al. 2024) for linear operators with an SVD and Gaussian noise.

    Args:
        num_steps: prior-step (reverse diffusion) steps per iteration.
        iterations: Gibbs iterations.
        rho_max, rho_min, decay: the coupling schedule ``rho_k = max(rho_min, rho_max decay^k)``.
    """

    requires = ("svd",)
    gaussian_noise = True

    def __init__(self, num_steps: int = 10, iterations: int = 40, rho_max: float = 1.0, rho_min: float = 0.02,
                 decay: float = 0.9, schedule: Optional[Schedule] = None):
        super().__init__(num_steps, schedule)
        if int(iterations) < 1 or not 0 < float(rho_min) <= float(rho_max) or not 0 < float(decay) <= 1:
            raise ValueError(f"PnPDM needs iterations >= 1, 0 < rho_min <= rho_max and decay in (0, 1], got "
                             f"{iterations}, {rho_min}, {rho_max}, {decay}")
        self.iterations, self.rho_max, self.rho_min, self.decay = int(iterations), float(rho_max), float(rho_min), float(decay)

    def rhos(self) -> list[float]:
        return [max(self.rho_min, self.rho_max * self.decay ** k) for k in range(self.iterations)]

    def sample(self, prior, operator, y, rng, noise=None):
        p = self.setup(prior, operator, y, noise)
        sigma = p.sigma
        spec = p.spectrum()
        x = prior.data_mean + self.rho_max * rng.randn((y.shape[0], *prior.image_shape)).to(y)
        for rho in self.rhos():
            xbar = spec.vt(x)                                            # likelihood step
            zn = rng.randn(xbar.shape).to(xbar)
            if sigma > 0:
                prec = spec.s ** 2 / sigma ** 2 + 1 / rho ** 2
                zbar = (spec.s * spec.uy / sigma ** 2 + xbar / rho ** 2) / prec + prec.rsqrt() * zn
            else:
                zbar = torch.where(spec.measured, spec.ybar, xbar + rho * zn)
            z = spec.v(zbar)
            t0 = time_at_level(prior.path, rho)                          # prior step: denoise at level rho
            a0, _ = prior.coefficients(t0, z)
            x = a0 * z
            for t, t_next in self.pairs(prior, t0):
                a, b = prior.coefficients(t, x)
                a_n, b_n = prior.coefficients(t_next, x)
                with torch.no_grad():
                    x = ddim_step(x, prior.denoise(x, t), a, b, a_n, b_n, eta=1.0, rng=rng)
        return x.detach()

    def expected_nfe(self, prior):
        n = sum(len(self.pairs(prior, time_at_level(prior.path, rho))) for rho in self.rhos())
        return {"nfe": n, "nfe_backward": 0}
