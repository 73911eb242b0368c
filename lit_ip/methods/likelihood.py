"""Data-fit objects: ``-log p(y | x0)`` of a noise model, per sample, bound to one problem.

Every method asks its problem's data fit for what it needs instead of re-deriving it:

* :meth:`DataFit.residual` -- ``y - A(x0)``;
* :meth:`DataFit.nll` -- ``(1/2) sum_j (y_j - A(x0)_j)^2 / v_j`` per sample (``v_j`` the noise
  variance of entry ``j``), and :meth:`DataFit.grad` its gradient in ``x0``;
* :meth:`DataFit.distance` -- the norm DPS steps along (Chung et al. 2023, Eq. 16 and Sec. 3.2):
  ``||y - A(x0)||`` for Gaussian noise, ``||y - A(x0)||_Lambda`` with ``Lambda_jj = 1 / (2 y_j)`` for
  Poisson noise.

Gaussian noise: ``v_j = sigma^2``. Poisson noise ``y = Poisson(rate A x) / rate``: the Gaussian
approximation ``v_j = max(y_j, floor) / rate`` (the variance of the count, evaluated at the data,
as DPS does).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..operators.noise import GaussianNoise, NoiseModel, PoissonNoise


def per_sample_sum(x: Tensor) -> Tensor:
    """``(B, ...) -> (B,)`` sum over all but the batch dimension."""
    return x.flatten(1).sum(1)


class DataFit:
    """``-log p(y | x0)`` up to a constant, for one problem (operator and ``y``).

    Args:
        operator: the forward operator.
        y: the measurements.
        variance: the noise variance per entry (a number or a tensor broadcastable to ``y``).
        norm_weights: weights of :meth:`distance` (None = unweighted).
    """

    def __init__(self, operator, y: Tensor, variance, norm_weights: Optional[Tensor] = None):
        self.operator, self.y = operator, y
        self.variance = variance
        self.norm_weights = norm_weights

    @property
    def sigma(self) -> float:
        """The Gaussian noise std (a number); only Gaussian data fits have one."""
        raise ValueError(f"{type(self).__name__} has no single Gaussian sigma")

    def residual(self, x0: Tensor) -> Tensor:
        return self.y - self.operator(x0)

    def require_density(self, method: str) -> None:
        """Refuse, naming ``method``, a fit whose :meth:`nll` is not finite (noiseless Gaussian data)."""

    def nll(self, x0: Tensor) -> Tensor:
        """``(1/2) sum_j r_j^2 / v_j`` per sample."""
        return 0.5 * per_sample_sum(self.residual(x0) ** 2 / self.variance)

    def grad(self, x0: Tensor) -> Tensor:
        """``d nll / d x0`` (by autograd, per sample; no graph is kept)."""
        with torch.enable_grad():
            x = x0.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.nll(x).sum(), x)
        return g

    def distance(self, x0: Tensor) -> Tensor:
        """DPS's per-sample norm ``||y - A(x0)||_Lambda`` (the square root of a clamped square, so its
        gradient is 0, not NaN, at an exact fit)."""
        r2 = self.residual(x0) ** 2
        if self.norm_weights is not None:
            r2 = r2 * self.norm_weights
        return torch.sqrt(per_sample_sum(r2).clamp_min(1e-30))


class GaussianFit(DataFit):
    """``y = A(x0) + sigma n``: ``nll = ||y - A(x0)||^2 / (2 sigma^2)`` (``sigma > 0`` for :meth:`nll`)."""

    def __init__(self, operator, y, sigma: float):
        self._sigma = float(sigma)
        super().__init__(operator, y, self._sigma ** 2)

    @property
    def sigma(self) -> float:
        return self._sigma

    def require_density(self, method):
        if self._sigma <= 0:
            raise ValueError(f"{method} weighs the data by 1 / sigma_y^2, but the measurement noise is 0; "
                             f"set sigma_y explicitly (a small positive number) for noiseless data")

    def nll(self, x0):
        self.require_density("the Gaussian data fit")
        return super().nll(x0)


class PoissonFit(DataFit):
    """``y = Poisson(rate A(x0)) / rate``, Gaussian-approximated with variance ``max(y, floor) / rate``;
    :meth:`distance` is DPS's ``Lambda = 1 / (2 max(y, floor))`` norm."""

    def __init__(self, operator, y, rate: float, floor: float = 1e-3):
        y_pos = y.clamp_min(floor)
        super().__init__(operator, y, y_pos / float(rate), norm_weights=1.0 / (2 * y_pos))
        self.rate = float(rate)


def data_fit(noise: NoiseModel, operator, y: Tensor, sigma: Optional[float] = None) -> DataFit:
    """The data fit of ``noise``; ``sigma`` overrides the Gaussian width (a method's tuning parameter,
    e.g. DAPS's ``tau`` or RED-diff's ``sigma_y``), which makes the fit Gaussian whatever the noise."""
    if sigma is not None:
        return GaussianFit(operator, y, sigma)
    if isinstance(noise, GaussianNoise):
        return GaussianFit(operator, y, noise.sigma)
    if isinstance(noise, PoissonNoise):
        return PoissonFit(operator, y, noise.rate)
    raise ValueError(f"no data fit for noise model {type(noise).__name__}; known: GaussianNoise, PoissonNoise")


__all__ = ["DataFit", "GaussianFit", "PoissonFit", "data_fit", "per_sample_sum"]
