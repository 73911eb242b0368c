"""DAPS: improving diffusion inverse problem solving with decoupled noise annealing,
Zhang, Chu, Berner, Meng, Anandkumar & Song 2024 (CVPR 2025), Algorithm 1.

Annealing over noise levels ``sigma_max = sigma_N > ... > sigma_1 = sigma_min`` (VE levels ``b / a``,
on EDM's grid with exponent 7, as the authors' code; each mapped to the path time with that level);
at each level, with ``x_t`` the current state:

1. ``x0_hat = x0(x_t)`` by a few-step probability-flow ODE from ``t`` to the clean end
   (``ode_steps`` deterministic steps; ``ode_steps = 1`` is one-step Tweedie ``E[x0 | x_t]``);
2. Langevin MCMC on ``p(x0 | x_t, y) ~ N(x0; x0_hat, r_t^2 I) p(y | x0)`` started at ``x0_hat``:

       x0 <- x0 + eta_i [ (x0_hat - x0) / r_t^2 - grad ||A(x0) - y||^2 / (2 sigma_y^2) ] + sqrt(2 eta_i) z,

   with ``r_t = sigma_t = b / a`` (the VE noise level of the level, as the authors' code) and a step
   size decaying linearly over the levels from ``lr`` to ``lr * lr_min_ratio``;
3. ``x_{t-1} = a' x0 + b' z`` -- the decoupled step: fresh noise at the next level around ``x0``.

The last level returns ``x0``. The paper stops annealing at ``sigma_min = 0.1`` in [-1, 1] units
(0.05 here): the Langevin step must stay below ``~ r_t^2`` at the last level to be stable. Levels with
``a = 0`` (a flow at ``t = 1``) have ``r_t = inf``: the prior term vanishes and the chain would have
nothing to hold it, so ``x0 = x0_hat`` there. Runs on VP/DDPM and rectified-flow priors through ``(a, b)``.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..operators.noise import GaussianNoise
from .base import Method
from ..priors.paths import VPPath
from .whole_loop import deterministic_solve, descending_times, likelihood_sigma, per_sample_sum, time_for_level


class DAPS(Method):
    """DAPS (Zhang et al. 2024) with Langevin dynamics as the MCMC.

    Needs a differentiable operator (any, linear or not: the data gradient is taken by autograd,
    per sample) and a Gaussian likelihood. Cost per level: ``ode_steps`` network calls and
    ``langevin_steps`` operator gradients.

    Args:
        num_steps: annealing levels (paper: 200 on an EDM grid).
        ode_steps: deterministic steps of the inner ODE (paper: 5; 1 = Tweedie).
        langevin_steps: Langevin iterations per level (paper: 100).
        lr: initial Langevin step size in [0, 1] units squared (the paper's 1e-4 for [-1, 1]
            images is 2.5e-5 here).
        lr_min_ratio: final step size as a fraction of ``lr`` (paper: 0.01).
        sigma_y: likelihood std (the paper's tau, a tuning parameter); None = the noise sigma.
        sigma_max: first annealing level; None = the level of the path's ``t_max`` (paper: 100 in
            [-1, 1] units).
        sigma_min: last annealing level in [0, 1] units (paper: 0.1 in [-1, 1] units = 0.05).
    """

    requires = ("differentiable",)

    def __init__(self, num_steps: int = 200, ode_steps: int = 5, langevin_steps: int = 100,
                 lr: float = 2.5e-5, lr_min_ratio: float = 0.01, sigma_y: Optional[float] = None,
                 sigma_max: Optional[float] = None, sigma_min: float = 0.05):
        super().__init__(num_steps)
        if int(ode_steps) < 1 or int(langevin_steps) < 0:
            raise ValueError(f"DAPS needs ode_steps >= 1 and langevin_steps >= 0, got {ode_steps}, {langevin_steps}")
        if not float(lr) > 0 or not 0 < float(lr_min_ratio) <= 1:
            raise ValueError(f"DAPS needs lr > 0 and lr_min_ratio in (0, 1], got {lr}, {lr_min_ratio}")
        if sigma_y is not None and not float(sigma_y) > 0:
            raise ValueError(f"DAPS sigma_y must be > 0, got {sigma_y}")
        self.ode_steps, self.langevin_steps = int(ode_steps), int(langevin_steps)
        self.lr, self.lr_min_ratio = float(lr), float(lr_min_ratio)
        if not float(sigma_min) > 0 or (sigma_max is not None and not float(sigma_max) > float(sigma_min)):
            raise ValueError(f"DAPS needs 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_y = None if sigma_y is None else float(sigma_y)
        self.sigma_max = None if sigma_max is None else float(sigma_max)
        self.sigma_min = float(sigma_min)

    def levels(self, path) -> list:
        """Annealing times: EDM's grid ``(s_max^(1/7) + i/(N-1) (s_min^(1/7) - s_max^(1/7)))^7`` of VE
        levels, each mapped to its path time (VP times rounded to training steps, repeats dropped).
        With ``sigma_max=None`` the first level is the path's ``t_max`` (a flow's ``t = 1`` is at an
        infinite level: the grid then starts from 1e3)."""
        a, b = path.coefficients(torch.as_tensor(path.t_max, dtype=torch.float64))
        top = self.sigma_max if self.sigma_max is not None else min(float(b / a) if float(a) > 0 else 1e3, 1e3)
        i = torch.linspace(0, 1, self.num_steps, dtype=torch.float64)
        sig = (top ** (1 / 7) + i * (self.sigma_min ** (1 / 7) - top ** (1 / 7))) ** 7
        times = [time_for_level(path, float(v)) for v in sig]
        if self.sigma_max is None:
            times[0] = torch.as_tensor(path.t_max, dtype=torch.float64)
        grid = torch.stack(times)
        if isinstance(path, VPPath):
            grid = torch.unique_consecutive(grid.round())
        return list(grid)

    def step_size(self, i: int, n: int) -> float:
        """Langevin step size at level ``i`` of ``n`` (linear decay from ``lr`` to ``lr * lr_min_ratio``)."""
        ratio = i / max(n - 1, 1)
        return self.lr * (1 + ratio * (self.lr_min_ratio - 1))

    def langevin(self, x0_hat, r2: float, operator, y, sigma_y: float, eta: float, noise):
        """``langevin_steps`` unadjusted Langevin steps on ``N(x0_hat, r2 I) p(y | x0)``;
        ``noise`` is ``(B, langevin_steps, *image)`` standard normal."""
        x = x0_hat.clone()
        for j in range(self.langevin_steps):
            with torch.enable_grad():
                x_in = x.detach().requires_grad_(True)
                loss = per_sample_sum((operator(x_in) - y) ** 2) / (2 * sigma_y ** 2)
                (grad,) = torch.autograd.grad(loss.sum(), x_in)
            x = x + eta * ((x0_hat - x) / r2 - grad) + (2 * eta) ** 0.5 * noise[:, j]
        return x

    def sample(self, prior, operator, y, rng, noise=None):
        noise = GaussianNoise(0.0) if noise is None else noise
        self.check_inputs(prior, operator, y, noise)
        sigma_y = likelihood_sigma(noise, self.sigma_y, self.name)
        B, shape = y.shape[0], prior.image_shape
        levels = self.levels(prior.path)
        x = prior.init_noise(B, rng, levels[0]).to(y)
        for i, t in enumerate(levels):
            a, b = prior.coefficients(t, x)
            with torch.no_grad():
                x0_hat = deterministic_solve(prior, x, descending_times(prior.path, t, self.ode_steps))
            x0 = x0_hat
            if float(a) > 0 and self.langevin_steps > 0:
                z = rng.randn((B, self.langevin_steps, *shape)).to(x)
                x0 = self.langevin(x0_hat, float(b / a) ** 2, operator, y, sigma_y, self.step_size(i, len(levels)), z)
            if i == len(levels) - 1:
                return x0.detach()
            a_n, b_n = prior.coefficients(levels[i + 1], x)
            x = a_n * x0 + b_n * rng.randn((B, *shape)).to(x)
        return x
