"""Uncertainty from several posterior samples per measurement, and its calibration.

For samples ``x_1..x_N`` of ``p(x | y)`` and ground truth ``x``:

* posterior mean ``m = mean_i x_i`` and per-pixel standard deviation (as images);
* ``coverage90``: fraction of ground-truth pixels inside the per-pixel central 90%
  interval of the samples (0.9 for a calibrated sampler, up to the N-sample quantiles);
* ``mse_ratio``: the sample MSE over the MSE of the mean, corrected for the
  N-sample mean: for a true posterior sampler ``E||x_i - x||^2 = 2 MMSE`` and
  ``E||m - x||^2 = MMSE (1 + 1/N)``, so ``mean_i ||x_i - x||^2 / ||m - x||^2 * (N + 1) / N``
  is about 2; a sampler that collapses to its mean gives about 1, an over-dispersed one more.
"""
from __future__ import annotations

import torch
from torch import Tensor


def posterior_stats(samples: Tensor) -> tuple[Tensor, Tensor]:
    """``samples (B, N, C, H, W)`` -> posterior mean and per-pixel std, each ``(B, C, H, W)``."""
    if samples.dim() != 5 or samples.shape[1] < 2:
        raise ValueError(f"need samples of shape (B, N>=2, C, H, W), got {tuple(samples.shape)}")
    return samples.mean(dim=1), samples.std(dim=1, unbiased=True)


def calibration(samples: Tensor, target: Tensor, level: float = 0.9) -> dict[str, Tensor]:
    """Per-image calibration values (each ``(B,)``): ``coverage90``, ``mse_samples``,
    ``mse_mean`` (MSE of the posterior mean) and ``mse_ratio`` (about 2 for a true sampler)."""
    mean, _ = posterior_stats(samples)
    if target.shape != mean.shape:
        raise ValueError(f"target has shape {tuple(target.shape)}, samples give images {tuple(mean.shape)}")
    n = samples.shape[1]
    s, x = samples.double(), target.double()
    lo_hi = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=s.dtype, device=s.device)
    lo, hi = torch.quantile(s, lo_hi, dim=1)
    inside = ((x >= lo) & (x <= hi)).flatten(1).double().mean(dim=1)
    mse_samples = (s - x[:, None]).pow(2).flatten(2).mean(dim=2).mean(dim=1)
    mse_mean = (mean.double() - x).pow(2).flatten(1).mean(dim=1)
    ratio = mse_samples / mse_mean.clamp_min(1e-30) * (n + 1) / n
    out = {"coverage90": inside, "mse_samples": mse_samples, "mse_mean": mse_mean, "mse_ratio": ratio}
    return {k: v.float() for k, v in out.items()}


def dataset_mse_ratio(mean_mse_samples: float, mean_mse_mean: float, num_samples: int) -> float:
    """Data-set MSE/MMSE ratio from the data-set means (a ratio of means, more stable than
    the mean of per-image ratios)."""
    n = int(num_samples)
    return float(mean_mse_samples) / max(float(mean_mse_mean), 1e-30) * (n + 1) / n


def reference_coverage(num_samples: int, level: float = 0.9, draws: int = 200_000) -> float:
    """Expected ``coverage90`` of an *exact* sampler with ``num_samples`` samples.

    The interval is the empirical ``[(1-level)/2, (1+level)/2]`` quantile range of N samples
    (linear interpolation, as :func:`calibration`), so with few samples even an exact sampler
    covers less than ``level`` (N = 4: the truth must fall inside the samples' range shrunk
    by interpolation). Ground truth and samples are then exchangeable draws, so the value is
    distribution-free: here by Monte Carlo on uniforms (fixed seed, ~0.001 accurate).
    """
    n = int(num_samples)
    if n < 2:
        raise ValueError(f"coverage needs at least 2 samples, got {n}")
    g = torch.Generator().manual_seed(0)
    u = torch.rand(draws, n + 1, generator=g, dtype=torch.float64)
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    lo, hi = torch.quantile(u[:, :n], q, dim=1)
    return float(((u[:, n] >= lo) & (u[:, n] <= hi)).double().mean())
