"""Measurement consistency of a reconstruction: how well ``A(x)`` explains ``y``.

``consistency = ||y - A(x)|| / (sigma_y * sqrt(m))`` per sample (``m`` = entries of one
measurement). A reconstruction that explains ``y`` up to the noise scores about 1; much
larger means it ignores the data, much smaller means it fits the noise.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def residual_rms(y: Tensor, ax: Tensor) -> Tensor:
    """Per-sample root-mean-square residual ``||y - A(x)|| / sqrt(m)``, shape ``(B,)``."""
    if y.shape != ax.shape:
        raise ValueError(f"y has shape {tuple(y.shape)} but A(x) has shape {tuple(ax.shape)}")
    r = (y - ax).flatten(1).double()
    return (r.pow(2).mean(dim=1).sqrt()).to(torch.float32)


def measurement_consistency(y: Tensor, ax: Tensor, sigma: float) -> Tensor:
    """``||y - A(x)|| / (sigma * sqrt(m))`` per sample; NaN for a noiseless measurement (sigma 0)."""
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"noise sigma must be finite and >= 0 (in [0, 1] units), got {sigma}")
    rms = residual_rms(y, ax)
    return rms / sigma if sigma > 0 else torch.full_like(rms, math.nan)
