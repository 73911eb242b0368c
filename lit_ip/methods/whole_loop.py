"""Small pieces shared by the whole-loop methods (RED-diff, DAPS, DMPlug, SMC, DPS-w).

* :func:`deterministic_solve` -- the few-step deterministic sampler ``x_t -> x0`` (DDIM with
  ``eta = 0``, which on a rectified-flow path is the Euler step of the velocity ODE), used as
  DAPS's probability-flow ODE and as DMPlug's generator ``G(z)``.
* :func:`descending_times` -- a grid from a given time down to the path's clean end.
* :func:`likelihood_sigma` -- the Gaussian likelihood std a method uses.
* :func:`time_for_level` -- the path time whose VE noise level ``b / a`` is a given value.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ..priors.paths import VPPath
from ..sampling.steps import ddim_step
from .spectral import gaussian_sigma


def per_sample_sum(x: Tensor) -> Tensor:
    """``(B, ...) -> (B,)`` sum over all but the batch dimension."""
    return x.flatten(1).sum(1)


def descending_times(path, t_start, num: int) -> list:
    """``num`` times from ``t_start`` down to ``path.t_min`` (VP times rounded to training steps,
    repeats dropped)."""
    t_start = float(t_start)
    if num == 1:
        return [torch.tensor(t_start, dtype=torch.float64)]
    grid = torch.linspace(t_start, float(path.t_min), num, dtype=torch.float64)
    if isinstance(path, VPPath):
        grid = torch.unique_consecutive(grid.round())   # close to the clean end fewer steps remain
    return list(grid)


def deterministic_solve(prior, x: Tensor, times: Sequence) -> Tensor:
    """Run the deterministic sampler from ``x`` at ``times[0]`` through ``times`` to the clean end.

    Each step is ``x' = a' x0_hat + b' eps_hat`` (DDIM, eta = 0; flow Euler on a = 1 - t, b = t);
    the last step (to ``t = None``) returns the Tweedie estimate. One network call per time.
    Differentiable in ``x`` when called under autograd (DMPlug back-propagates through it).
    """
    times = list(times)
    for t, t_next in zip(times, times[1:] + [None]):
        a, b = prior.coefficients(t, x)
        a_n, b_n = prior.coefficients(t_next, x)
        x = ddim_step(x, prior.denoise(x, t), a, b, a_n, b_n, 0.0)
    return x


def likelihood_sigma(noise, override: Optional[float], method: str) -> float:
    """The std of the Gaussian likelihood ``p(y | x0)`` a method uses: ``override`` when given
    (a tuning parameter, e.g. DAPS's ``tau``), else the noise model's sigma, which must then be > 0."""
    if override is not None:
        return float(override)
    sigma = gaussian_sigma(noise, method)
    if sigma <= 0:
        raise ValueError(f"{method} weighs the data by 1 / sigma_y^2, but the measurement noise is 0; "
                         f"set sigma_y explicitly (a small positive number) for noiseless data")
    return sigma


def time_for_level(path, level: float, iters: int = 80) -> Tensor:
    """The time ``t`` with ``b(t) / a(t) = level`` (bisection; ``b / a`` increases with ``t`` on
    every path). Levels outside the path's range are clamped to ``t_min`` / ``t_max``."""
    lo, hi = float(path.t_min), float(path.t_max)

    def sigma(t: float) -> float:
        a, b = path.coefficients(torch.tensor(t, dtype=torch.float64))
        return float(b / a) if float(a) > 0 else float("inf")

    if level <= sigma(lo):
        return torch.tensor(lo, dtype=torch.float64)
    if level >= sigma(hi):
        return torch.tensor(hi, dtype=torch.float64)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if sigma(mid) < level else (lo, mid)
    return torch.tensor(0.5 * (lo + hi), dtype=torch.float64)
