"""Unconditional solver steps shared by all methods.

One generic step covers DDPM ancestral sampling, DDIM and the Euler step of a
flow. Given the current state ``x`` at time ``t`` (coefficients ``a, b``) and an
estimate ``x0`` of the clean image, the noise estimate is ``eps = (x - a x0) / b``
and the state at the next time (``a', b'``) is (Song et al. 2021, DDIM, Eq. 12)

    x' = a' x0 + sqrt(b'^2 - c^2) eps + c z,        z ~ N(0, I),

with ``c = eta * b' * sqrt(1 - (a b' / (a' b))^2)``, the standard deviation of the
Gaussian bridge ``q(x' | x, x0)`` of the path scaled by ``eta``. ``eta = 1`` is DDPM
ancestral sampling (posterior variance beta-tilde), ``eta = 0`` is DDIM, which on the
rectified-flow path ``a = 1 - t, b = t`` is exactly the Euler step of the velocity ODE.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..priors.parameterization import eps_from_x0


def bridge_std(a: Tensor, b: Tensor, a_next: Tensor, b_next: Tensor, eta: float) -> Tensor:
    """``c`` above: eta times the std of ``q(x_next | x_t, x0)``."""
    if eta == 0 or float(b_next) == 0:
        return torch.zeros_like(b_next)
    ratio = (a * b_next / (a_next * b)).clamp(max=1.0)
    return eta * b_next * torch.sqrt((1 - ratio ** 2).clamp_min(0))


def ddim_mean(x: Tensor, x0: Tensor, a: Tensor, b: Tensor, a_next: Tensor, b_next: Tensor,
              c: Tensor) -> Tensor:
    """The deterministic part ``a' x0 + sqrt(b'^2 - c^2) eps_hat`` of a step with noise std ``c``
    (the mean of the step's Gaussian transition; affine in ``x0``)."""
    return a_next * x0 + torch.sqrt((b_next ** 2 - c ** 2).clamp_min(0)) * eps_from_x0(x0, x, a, b)


def ddim_step(x: Tensor, x0: Tensor, a: Tensor, b: Tensor, a_next: Tensor, b_next: Tensor,
              eta: float = 0.0, rng=None, c: Optional[Tensor] = None) -> Tensor:
    """Move ``x`` from ``(a, b)`` to ``(a_next, b_next)`` given the clean estimate ``x0``; the fresh
    noise has std ``c`` (default :func:`bridge_std` with ``eta``; ``c <= b_next``)."""
    if float(b_next) == 0:
        return x0
    c = bridge_std(a, b, a_next, b_next, eta) if c is None else torch.as_tensor(c).to(b_next)
    out = ddim_mean(x, x0, a, b, a_next, b_next, c)
    if float(c) > 0:
        if rng is None:
            raise ValueError("a stochastic step (eta > 0) needs a random generator")
        out = out + c * rng.randn(x.shape).to(x)
    return out


def deterministic_solve(prior, x: Tensor, times) -> Tensor:
    """Run the deterministic sampler from ``x`` at ``times[0]`` through ``times`` to the clean end.

    Each step is ``x' = a' x0_hat + b' eps_hat`` (DDIM, eta = 0; flow Euler on a = 1 - t, b = t);
    the last step (to ``t = None``) returns the Tweedie estimate. One prior call per time.
    Differentiable in ``x`` when called under autograd (DMPlug back-propagates through it).
    """
    times = list(times)
    for t, t_next in zip(times, times[1:] + [None]):
        a, b = prior.coefficients(t, x)
        a_n, b_n = prior.coefficients(t_next, x)
        x = ddim_step(x, prior.denoise(x, t), a, b, a_n, b_n, 0.0)
    return x
