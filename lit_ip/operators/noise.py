"""Measurement noise models. Sigma is always in [0, 1] image units (DESIGN.md, Units).

The DPS code base adds ``sigma = 0.05`` to images in [-1, 1], which is ``0.025`` here.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class NoiseModel(nn.Module):
    """``y = noise(A(x))``. ``sigma`` is the Gaussian standard deviation where one exists."""

    sigma: float = 0.0

    def sample(self, clean: Tensor, rng) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, clean: Tensor, rng) -> Tensor:
        return self.sample(clean, rng)


class GaussianNoise(NoiseModel):
    """Additive white Gaussian noise ``y = A(x) + sigma * n``, ``n ~ N(0, I)``.

    Args:
        sigma: standard deviation in [0, 1] image units (``0`` = noiseless).
    """

    def __init__(self, sigma: float = 0.0):
        super().__init__()
        sigma = float(sigma)
        if not math.isfinite(sigma) or sigma < 0:
            raise ValueError(f"noise sigma must be a finite number >= 0 (in [0, 1] image units), got {sigma}")
        self.sigma = sigma

    def sample(self, clean, rng):
        if self.sigma == 0:
            return clean.clone()
        return clean + self.sigma * rng.randn(clean.shape).to(clean)

    def extra_repr(self):
        return f"sigma={self.sigma} ([0, 1] units)"


class PoissonNoise(NoiseModel):
    """Poisson (shot) noise: ``y = Poisson(rate * A(x)) / rate``; ``A(x)`` must be >= 0.

    Its Gaussian approximation has per-pixel variance ``A(x) / rate``; ``sigma`` reports
    the value at mid-grey, ``sqrt(0.5 / rate)``, for methods that need one number.
    """

    def __init__(self, rate: float = 100.0):
        super().__init__()
        if not rate > 0:
            raise ValueError(f"Poisson rate must be > 0, got {rate}")
        self.rate = float(rate)
        self.sigma = math.sqrt(0.5 / self.rate)

    def sample(self, clean, rng):
        if (clean < 0).any():
            raise ValueError("Poisson noise needs a non-negative noiseless measurement A(x)")
        rows = [torch.poisson(c.detach().cpu().double() * self.rate, generator=g)
                for c, g in zip(clean, rng.generators)]
        return torch.stack(rows).to(clean) / self.rate
