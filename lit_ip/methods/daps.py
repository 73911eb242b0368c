"""DAPS, from "Improving diffusion inverse problem solving with decoupled noise annealing",
Zhang, Chu, Berner, Meng, Anandkumar & Song 2024 (CVPR 2025, arXiv:2407.01521), Algorithm 1.

Annealing over noise levels ``sigma_max = sigma_N > ... > sigma_1 = sigma_min`` (VE levels ``b / a``,
the method's schedule, by default EDM's grid with exponent 7 as the authors' code; each mapped to the path time with that level);
at each level, with ``x_t`` the current state:

1. ``x0_hat = x0(x_t)`` by a few-step probability-flow ODE from ``t`` to the clean end
   (``ode_steps`` deterministic steps; ``ode_steps = 1`` is one-step Tweedie ``E[x0 | x_t]``);
2. Langevin MCMC on ``p(x0 | x_t, y) ~ N(x0; x0_hat, r_t^2 I) p(y | x0)`` started at ``x0_hat``:

       x0 <- x0 + eta_i [ (x0_hat - x0) / r_t^2 - grad ||A(x0) - y||^2 / (2 sigma_y^2) ] + sqrt(2 eta_i) z,

   with ``r_t = sigma_t = b / a`` (the VE noise level of the level, as the authors' code) and a step
   size decaying linearly over the levels from ``lr`` to ``lr * lr_min_ratio``;
3. ``x_{t-1} = a' x0 + b' z`` -- the decoupled step: fresh noise at the next level around ``x0``.

The likelihood width is the paper's ``tau`` (a tuning parameter, not the noise level: the paper's
configs use ``tau = 0.01`` with measurement noise 0.05, both in [-1, 1] units), ``sigma_y = tau / 2``
in our [0, 1] units, so the data term is ``||A(x0) - y||^2 / (2 (tau / 2)^2)``; ``tau=None`` uses the
noise model's own data fit. The inner ODE runs on the paper's grid, EDM's levels with exponent 7 from
the current level down to ``sigma_min = 0.01`` in [-1, 1] units (``KarrasSigma(7, sigma_min=0.005)``).
The Langevin chain is stable only for ``lr < 2 (tau / 2)^2 / ||A||^2`` (the data term's curvature):
at the paper's tau = 0.01 that is 5e-5 for ``||A|| = 1`` (measured: lr = 1e-4 gives NaN on
denoising, inpainting and deblurring). Langevin step sizes convert as ``lr = lr' / 4`` (the gradient in [0, 1] units is twice that in
[-1, 1] units, the step half as long): the paper's 1e-4 is 2.5e-5 here.

The last level returns ``x0``. The paper stops annealing at ``sigma_min = 0.1`` in [-1, 1] units
(0.05 here, the default ``KarrasSigma(sigma_min=0.05)``): the Langevin step must stay below ``~ r_t^2`` at the last level to be stable. Levels with
``a = 0`` (a flow at ``t = 1``) have ``r_t = inf``: the prior term vanishes and the chain would have
nothing to hold it, so ``x0 = x0_hat`` there. Runs on VP/DDPM and rectified-flow priors through ``(a, b)``.

Measured on real images (benchmarks/sweep_methods.md: natural_ddpm, 4 training crops, shipped
settings of configs/method/daps.yaml: the paper's tau = 0.01 and lr = 2.5e-5 (1e-4 in its units), 25
levels, 3 ODE steps, 50 Langevin steps; posterior mean of 4 samples, PSNR dB): beats the trivial
estimate on denoise (23.0 vs 20.3), sr_4x (23.4 vs 22.2), inpainting (25.0 / 28.5 vs 7.1 / 12.8),
deblur (27.7 vs 25.1) and, by less than the standard error, colorization (25.2 vs 24.4 for the
luminance image; the only method of the registry above it). The previous default (likelihood width =
the noise sigma, uniform inner grid) gave 15.0 / 15.0 / 18.1 / 22.7 / 22.1 / 17.5 single-sample: it
ignored y.

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``daps`` does not beat the best
baseline by more than the standard error on natural_ddpm sr_4x 26.90 vs pinv 26.65 (8 samples:
27.59, beats it); natural_rf sr_4x 24.69 vs pinv 26.65 (8 samples: 25.55, still does not); faces_rf
sr_4x 20.62 vs pinv 20.39. It beats it on every task run with faces_ddpm (5 of 5 tasks).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..sampling.schedules import KarrasSigma, Schedule
from ..sampling.steps import deterministic_solve
from .base import Method


class DAPS(Method):
    """DAPS (Zhang et al. 2024) with Langevin dynamics as the MCMC.

    Needs a differentiable operator (any, linear or not: the data gradient is taken by autograd,
    per sample) and a likelihood (the noise model's data fit, or a Gaussian of width ``sigma_y``).
    Cost per level: ``ode_steps`` network calls and ``langevin_steps`` operator gradients.

    Args:
        num_steps: annealing levels (paper: 200).
        ode_steps: deterministic steps of the inner ODE (paper: 5; 1 = Tweedie).
        langevin_steps: Langevin iterations per level (paper: 100).
        lr: initial Langevin step size in [0, 1] units squared (the paper's 1e-4 for [-1, 1]
            images is 2.5e-5 here).
        lr_min_ratio: final step size as a fraction of ``lr`` (paper: 0.01).
        tau: likelihood std in the paper's [-1, 1] units (paper: 0.01; ``sigma_y = tau / 2``);
            None = the noise model's data fit.
        sigma_y: likelihood std in [0, 1] units; overrides ``tau`` when given.
        schedule: the annealing levels (default ``KarrasSigma(rho=7, sigma_min=0.05)``: from the
            path's top level down to 0.05 in [0, 1] units, the paper's 0.1 in [-1, 1] units).
        ode_schedule: the grid of the inner ODE from each level down (default the paper's
            ``KarrasSigma(rho=7, sigma_min=0.005)``).
    """

    requires = ("differentiable",)

    def __init__(self, num_steps: int = 200, ode_steps: int = 5, langevin_steps: int = 100,
                 lr: float = 2.5e-5, lr_min_ratio: float = 0.01, tau: Optional[float] = 0.01,
                 sigma_y: Optional[float] = None, schedule: Optional[Schedule] = None, ode_schedule: Optional[Schedule] = None):
        super().__init__(num_steps, schedule)
        if int(ode_steps) < 1 or int(langevin_steps) < 0:
            raise ValueError(f"DAPS needs ode_steps >= 1 and langevin_steps >= 0, got {ode_steps}, {langevin_steps}")
        if not float(lr) > 0 or not 0 < float(lr_min_ratio) <= 1:
            raise ValueError(f"DAPS needs lr > 0 and lr_min_ratio in (0, 1], got {lr}, {lr_min_ratio}")
        if sigma_y is not None and not float(sigma_y) > 0:
            raise ValueError(f"DAPS sigma_y must be > 0, got {sigma_y}")
        if tau is not None and not float(tau) > 0:
            raise ValueError(f"DAPS tau must be > 0, got {tau}")
        self.tau = None if tau is None else float(tau)
        self.ode_steps, self.langevin_steps = int(ode_steps), int(langevin_steps)
        self.lr, self.lr_min_ratio = float(lr), float(lr_min_ratio)
        self.sigma_y = None if sigma_y is None else float(sigma_y)
        self.ode_schedule = ode_schedule if ode_schedule is not None else KarrasSigma(rho=7.0, sigma_min=0.005)

    def default_schedule(self):
        return KarrasSigma(rho=7.0, sigma_min=0.05)

    def likelihood_sigma(self):
        """``sigma_y`` if given, else ``tau / 2`` (the paper's tau in [-1, 1] units), else None."""
        if self.sigma_y is not None:
            return self.sigma_y
        return None if self.tau is None else self.tau / 2

    def levels(self, prior) -> list:
        return self.schedule.times(prior.path, self.num_steps)

    def ode_times(self, prior, t) -> list:
        return self.ode_schedule.times(prior.path, self.ode_steps, t)

    def step_size(self, i: int, n: int) -> float:
        """Langevin step size at level ``i`` of ``n`` (linear decay from ``lr`` to ``lr * lr_min_ratio``)."""
        ratio = i / max(n - 1, 1)
        return self.lr * (1 + ratio * (self.lr_min_ratio - 1))

    def langevin(self, x0_hat, r2: float, fit, eta: float, noise):
        """``langevin_steps`` unadjusted Langevin steps on ``N(x0_hat, r2 I) p(y | x0)``;
        ``noise`` is ``(B, langevin_steps, *image)`` standard normal."""
        x = x0_hat.clone()
        for j in range(self.langevin_steps):
            x = x + eta * ((x0_hat - x) / r2 - fit.grad(x)) + (2 * eta) ** 0.5 * noise[:, j]
        return x

    def sample(self, prior, operator, y, rng, noise=None):
        p = self.setup(prior, operator, y, noise)
        p.fit.require_density(self.name)
        B, shape = y.shape[0], prior.image_shape
        levels = self.levels(prior)
        x = prior.init_noise(B, rng, levels[0]).to(y)
        for i, t in enumerate(levels):
            a, b = prior.coefficients(t, x)
            with torch.no_grad():
                x0_hat = deterministic_solve(prior, x, self.ode_times(prior, t))
            x0 = x0_hat
            if float(a) > 0 and self.langevin_steps > 0:
                z = rng.randn((B, self.langevin_steps, *shape)).to(x)
                x0 = self.langevin(x0_hat, float(b / a) ** 2, p.fit, self.step_size(i, len(levels)), z)
                if not torch.isfinite(x0).all():
                    raise FloatingPointError(
                        f"DAPS: the Langevin chain diverged at level {i} (lr={self.lr:g} is too large for "
                        f"the likelihood width sigma_y: it needs lr < 2 sigma_y^2 / ||A||^2)")
            if i == len(levels) - 1:
                return x0.detach()
            a_n, b_n = prior.coefficients(levels[i + 1], x)
            x = a_n * x0 + b_n * rng.randn((B, *shape)).to(x)
        return x

    def expected_nfe(self, prior):
        return {"nfe": sum(len(self.ode_times(prior, t)) for t in self.levels(prior)), "nfe_backward": 0}
