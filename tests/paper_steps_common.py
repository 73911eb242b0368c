"""Shared pieces of the paper-step tests (tests/test_paper_steps*.py): a Gaussian prior, operators,
fixed noise, loop states, and the conversion to the papers' [-1, 1] units.

Paper units: images in [-1, 1]. For a network path ``(a, b_net)`` our [0, 1] view has
``b = b_net / 2`` and, with ``x0' = 2 x0 - 1``, ``x'_t = a x0' + b_net eps = 2 x_t - a``; a linear
measurement ``y = A x0 + n`` is ``y' = 2 y - A 1`` with noise ``sigma' = 2 sigma``. The references
use only the prior (its denoiser), the operator's SVD, dense linear algebra and autograd -- never a
method's code.
"""
from __future__ import annotations

import math

import torch

from lit_ip.methods.base import StepState
from lit_ip.operators.dense import DenseMatrixOperator
from lit_ip.operators.noise import GaussianNoise
from lit_ip.priors.analytic import GaussianPrior
from lit_ip.priors.paths import VPPath

F64 = torch.float64
SHAPE, D, M, SIGMA, B = (1, 4, 4), 16, 8, 0.05, 2


def gaussian_prior(diagonal=False, path=None) -> GaussianPrior:
    g = torch.Generator().manual_seed(0)
    if diagonal:
        cov = torch.diag(0.01 + 0.04 * torch.rand(D, generator=g, dtype=F64))
    else:
        L = torch.randn(D, D, generator=g, dtype=F64) / math.sqrt(D)
        cov = 0.03 * L @ L.T + 0.005 * torch.eye(D, dtype=F64)
    mean = 0.5 + 0.1 * torch.randn(D, generator=g, dtype=F64)
    return GaussianPrior(mean, cov, SHAPE, path if path is not None else VPPath().scaled(0.5))


def dense(seed=1) -> DenseMatrixOperator:
    g = torch.Generator().manual_seed(seed)
    return DenseMatrixOperator(torch.randn(M, D, generator=g, dtype=F64) / math.sqrt(D), SHAPE)


def randn(*shape, seed=2):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


class FixedNoise:
    """A generator stand-in returning given draws in order."""

    def __init__(self, *draws):
        self.draws = list(draws)

    def randn(self, shape):
        z = self.draws.pop(0)
        assert tuple(z.shape) == tuple(shape), (z.shape, shape)
        return z


def state(prior, x, t, t_next, c=0.0, grad=True):
    a, b = prior.coefficients(t, x)
    a_n, b_n = prior.coefficients(t_next, x)
    x = x.detach().requires_grad_(grad)
    with torch.enable_grad():
        x0 = prior.denoise(x, t)
    return StepState(x, x0, t, t_next, a, b, a_n, b_n, torch.as_tensor(c, dtype=F64), 0)


def matrix(op) -> torch.Tensor:
    return op(torch.eye(D, dtype=F64).view(D, *SHAPE)).flatten(1).T          # (m, D)


def problem(method, prior, op, noise, seed=3):
    x = prior.sample(B, _rng(seed)).to(F64)
    y = noise.sample(op(x), _rng(seed + 1))
    return method.setup(prior, op, y, noise), y


def _rng(seed):
    from lit_ip.rng import SampleRNG
    return SampleRNG.for_indices(range(B), seed, dtype=F64)


def one_estimate(method, prior, op, seed):
    """``method.estimate`` at one step (t = 500 -> 400) from a state near the prior, with its inputs."""
    p, y = problem(method, prior, op, GaussianNoise(SIGMA))
    p.state.update(method.prepare(p) or {})
    x = prior.sample(B, _rng(seed)) * 0.6 + 0.3 * randn(B, *SHAPE)
    s = state(prior, x, torch.tensor(500.0, dtype=F64), torch.tensor(400.0, dtype=F64))
    with torch.enable_grad():
        return method.estimate(s, p), x, y, float(s.a), float(s.b)


def gaussian_posterior_mean(prior, x, a, b, AtA, Aty):
    """E[x0 | x_t, y] for a Gaussian prior, x_t = a x0 + b n and data with A^T A / sigma^2, A^T y / sigma^2."""
    C, m = prior.covs[0], prior.means[0]
    P = torch.linalg.inv(C) + a ** 2 / b ** 2 * torch.eye(D, dtype=F64) + AtA
    h = torch.linalg.solve(C, m) + a / b ** 2 * x.flatten(1) + Aty
    return torch.linalg.solve(P, h.T).T


def to_paper(x, a=1.0):
    """[0, 1] units -> [-1, 1] units of an image (a = 1) or a state with signal coefficient a."""
    return 2 * x - a


def paper_y(y, A):
    """The measurement of the [-1, 1] image, ``y' = 2 y - A 1``, as flat rows."""
    return 2 * y.flatten(1) - A.sum(1)


def stochastic_state(method, prior, x, t, t_n, grad=False):
    """The loop's state at ``t -> t_n`` with the method's own step noise ``c``; returns (state, c)."""
    a, b = prior.coefficients(t, x)
    a_n, b_n = prior.coefficients(t_n, x)
    c = method.noise_std(a, b, a_n, b_n)
    return state(prior, x, t, t_n, c, grad=grad), c


class Spectral:
    """The operator's own singular basis (the one its noise draws are made in), for the references:
    singular values padded to D, V^T / V on flat rows, U^T y padded, y_bar = S^+ U^T y."""

    def __init__(self, op):
        self.op = op
        self.s = torch.zeros(D, dtype=F64)
        self.s[:M] = op.singular_values().flatten().to(F64)
        self.measured = self.s > 0

    def vt(self, x):
        return self.op.vt(x.reshape(-1, *SHAPE)).flatten(1)

    def v(self, w):
        return self.op.v(w.reshape(-1, D)).flatten(1)

    def uty(self, y):
        out = torch.zeros(y.shape[0], D, dtype=F64)
        out[:, :M] = self.op.ut(y).flatten(1)[:, :M]
        return out

    def ybar(self, y):
        return torch.where(self.measured, self.uty(y) / self.s.clamp_min(1e-300), torch.zeros(()).to(F64))
