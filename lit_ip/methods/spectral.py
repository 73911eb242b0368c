"""Shared helpers of the methods: the spectral view of an SVD operator, the
measurement sigma, vector-Jacobian products through the prior.

Spectral view (Kawar et al. 2022, DDRM, Sec. 3.2). With ``A = U diag(s) V^T``, ``n`` pixels
and ``m`` measurements, coordinates ``x_bar = V^T x`` (length ``n``) decouple the problem:
``U^T y = s * x_bar[:k] + sigma_y * z`` with ``k = min(m, n)``. :class:`Spectrum` pads the
singular values and ``U^T y`` with zeros to length ``n`` so every method works with
per-coordinate arrays of the same length as ``x_bar``; ``s == 0`` marks the null space.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..operators.base import SVDOperator
from ..operators.noise import GaussianNoise, NoiseModel

#: singular values at or below this count as zero (as ``SVDOperator.inv_or_zero``)
ZERO = 1e-8


def _pad(z: Tensor, n: int) -> Tensor:
    k = min(z.shape[-1], n)
    z = z[..., :k]
    return torch.cat([z, z.new_zeros(*z.shape[:-1], n - k)], dim=-1) if k < n else z


class Spectrum:
    """Spectral coordinates of one problem: ``s`` (1 or B, n), ``uy = U^T y`` (B, n), and
    ``ybar = uy / s`` on the measured coordinates (0 in the null space).

    ``cutoff`` treats singular values below it as zero (a truncated SVD). Methods that
    *replace* spectral coordinates by ``ybar`` need it on ill-conditioned operators with
    noisy data (blur): ``ybar`` carries noise ``sigma_y / s``, which they would copy into the
    image; DDRM's and DDNM's public code truncate blur spectra for this reason.
    """

    def __init__(self, operator: SVDOperator, y: Tensor, cutoff: float = 0.0):
        self.operator = operator
        n = operator.num_pixels()
        self.s = _pad(operator.singular_values().to(y), n)
        self.uy = _pad(operator.ut(y), n)
        self.measured = self.s > max(ZERO, float(cutoff))
        self.ybar = torch.where(self.measured, self.uy / self.s.clamp_min(ZERO), torch.zeros_like(self.uy))

    def vt(self, x: Tensor) -> Tensor:
        return self.operator.vt(x)

    def v(self, z: Tensor) -> Tensor:
        return self.operator.v(z)


def gaussian_sigma(noise: NoiseModel, method: str) -> float:
    """The measurement noise std (in [0, 1] units) of a Gaussian noise model; other models
    are refused, since the method's formula assumes Gaussian noise."""
    if not isinstance(noise, GaussianNoise):
        raise ValueError(f"{method} assumes Gaussian measurement noise, got {type(noise).__name__}")
    return float(noise.sigma)


def vjp(x0: Tensor, x: Tensor, v: Tensor, retain: bool = False) -> Tensor:
    """``J^T v`` with ``J = d x0 / d x`` (per sample, since the prior treats rows independently)."""
    (g,) = torch.autograd.grad(x0, x, grad_outputs=v.detach(), retain_graph=retain)
    return g
