"""Analytic priors built deterministically from plain arguments (YAML-friendly).

:class:`~lit_ip.priors.analytic.GaussianPrior` and
:class:`~lit_ip.priors.analytic.GaussianMixturePrior` take tensors; these wrappers
build their mean(s) and covariance(s) from a handful of numbers and a seed, so a
config can say ``class_path: lit_ip.priors.synthetic.RandomGaussianPrior`` and two
processes (or the model and the data set of one config) get the same prior.

The covariance is a smooth random field: a squared-exponential kernel over pixel
positions (``length_scale`` in pixels) times a channel correlation, mixed with a
seeded random low-rank part (``random_fraction``) so the spectrum is not purely
stationary, plus a small nugget for conditioning. Images of ``d = C*H*W`` pixels need
``d x d`` matrices: keep ``d`` to a few thousand at most.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from .analytic import GaussianMixturePrior, GaussianPrior
from .paths import NoisePath


def _check_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape must be (C, H, W) with positive sizes, got {tuple(image_shape)}")
    return shape  # type: ignore[return-value]


def field_covariance(image_shape: Sequence[int], length_scale: float = 1.5,
                     channel_correlation: float = 0.8, random_fraction: float = 0.2,
                     rank: Optional[int] = None, generator: Optional[torch.Generator] = None,
                     nugget: float = 1e-3) -> Tensor:
    """A ``(d, d)`` correlation matrix (unit diagonal on average) of a smooth random field."""
    C, H, W = _check_shape(image_shape)
    if not length_scale > 0:
        raise ValueError(f"length_scale must be > 0 pixels, got {length_scale}")
    if not 0 <= channel_correlation < 1:
        raise ValueError(f"channel_correlation must be in [0, 1), got {channel_correlation}")
    if not 0 <= random_fraction <= 1:
        raise ValueError(f"random_fraction must be in [0, 1], got {random_fraction}")
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                            indexing="ij")
    pos = torch.stack([yy.flatten(), xx.flatten()], 1)
    spatial = torch.exp(-torch.cdist(pos, pos) ** 2 / (2 * float(length_scale) ** 2))
    chan = torch.full((C, C), float(channel_correlation), dtype=torch.float64)
    chan.fill_diagonal_(1.0)
    K = torch.kron(chan, spatial)                       # (C,H,W) flattening is channel-major
    d = K.shape[0]
    if random_fraction > 0:
        r = int(rank) if rank is not None else max(1, d // 4)
        Wm = torch.randn(d, r, dtype=torch.float64, generator=generator)
        R = Wm @ Wm.T / r
        K = (1 - random_fraction) * K + random_fraction * R
    K = K + nugget * torch.eye(d, dtype=torch.float64)
    return K / K.diagonal().mean()


def smooth_pattern(image_shape: Sequence[int], generator: torch.Generator,
                   length_scale: float = 1.5) -> Tensor:
    """A seeded smooth pattern of unit pixel standard deviation, flattened to ``(d,)``."""
    K = field_covariance(image_shape, length_scale, channel_correlation=0.5, random_fraction=0.0)
    z = torch.randn(K.shape[0], dtype=torch.float64, generator=generator)
    x = torch.linalg.cholesky(K) @ z
    return (x - x.mean()) / x.std().clamp_min(1e-12)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


class RandomGaussianPrior(GaussianPrior):
    """A Gaussian prior ``N(m, C)`` built from a seed.

    Args:
        image_shape: ``(C, H, W)``.
        seed: seeds the random parts of the mean and covariance.
        mean: mean grey level.
        std: pixel standard deviation (square root of the average covariance diagonal).
        mean_amplitude: amplitude of a seeded smooth pattern added to the mean.
        length_scale, channel_correlation, random_fraction, rank: shape of the covariance
            (see :func:`field_covariance`).
        path: noise path (default DDPM linear, 1000 steps).
    """

    def __init__(self, image_shape: Sequence[int] = (1, 8, 8), seed: int = 0, mean: float = 0.5,
                 std: float = 0.15, mean_amplitude: float = 0.1, length_scale: float = 1.5,
                 channel_correlation: float = 0.8, random_fraction: float = 0.2,
                 rank: Optional[int] = None, path: Optional[NoisePath] = None):
        shape = _check_shape(image_shape)
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std}")
        g = _generator(seed)
        m = float(mean) + float(mean_amplitude) * smooth_pattern(shape, g, length_scale)
        cov = float(std) ** 2 * field_covariance(shape, length_scale, channel_correlation,
                                                 random_fraction, rank, g)
        super().__init__(m, cov, shape, path)


class RandomGaussianMixturePrior(GaussianMixturePrior):
    """A Gaussian mixture with ``num_components`` seeded components.

    Component ``k`` has mean ``mean + separation * pattern_k`` (a seeded smooth pattern of
    unit pixel std) and covariance ``std^2 * field_k`` (its own seeded random field).

    Args:
        image_shape: ``(C, H, W)``.
        num_components: number of components K.
        seed: seeds all random parts.
        weights: K mixture weights (normalised); default equal.
        mean, separation, std: grey level, distance between component means (pixel std
            of the mean patterns), and within-component pixel std.
        length_scale, channel_correlation, random_fraction, rank: see :func:`field_covariance`.
        path: noise path (default DDPM linear, 1000 steps).
    """

    def __init__(self, image_shape: Sequence[int] = (1, 8, 8), num_components: int = 3,
                 seed: int = 0, weights: Optional[Sequence[float]] = None, mean: float = 0.5,
                 separation: float = 0.2, std: float = 0.06, length_scale: float = 1.5,
                 channel_correlation: float = 0.8, random_fraction: float = 0.2,
                 rank: Optional[int] = None, path: Optional[NoisePath] = None):
        shape = _check_shape(image_shape)
        K = int(num_components)
        if K < 1:
            raise ValueError(f"num_components must be >= 1, got {num_components}")
        if weights is not None and len(weights) != K:
            raise ValueError(f"got {len(weights)} weights for {K} components")
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std}")
        g = _generator(seed)
        means = torch.stack([float(mean) + float(separation) * smooth_pattern(shape, g, length_scale)
                             for _ in range(K)])
        covs = torch.stack([float(std) ** 2 * field_covariance(shape, length_scale, channel_correlation,
                                                               random_fraction, rank, g)
                            for _ in range(K)])
        w = torch.ones(K) if weights is None else torch.as_tensor([float(x) for x in weights])
        super().__init__(w, means, covs, shape, path)

