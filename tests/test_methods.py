"""Method-specific properties of the updates and refusals. (Properties every method must have run
over the registry in tests/test_method_cases.py; accuracy: tests/test_exact_posterior.py.)"""
from __future__ import annotations

import math

import pytest
import torch

from lit_ip.methods import DDNM, DDRM, DMPS, DPS, DDNMPlus, MomentMatching, PiGDM
from lit_ip.methods.registry import build
from lit_ip.operators.base import LinearOperator, Operator
from lit_ip.operators.dense import DenseMatrixOperator
from lit_ip.operators.inpainting import RandomInpainting
from lit_ip.operators.noise import GaussianNoise, PoissonNoise
from lit_ip.priors.analytic import GaussianPrior
from lit_ip.priors.paths import RectifiedFlowPath, VPPath
from lit_ip.rng import SampleRNG

SHAPE, D = (1, 4, 4), 16
F64 = torch.float64

#: the methods these tests look at, small step counts
ALL = {name: (lambda name=name: build(name, num_steps=12)) for name in
       ("DPS", "PiGDM", "DMPS", "DDRM", "DDNM", "DDNMPlus", "MomentMatching")}


def gaussian_prior(path=None) -> GaussianPrior:
    g = torch.Generator().manual_seed(0)
    L = torch.randn(D, D, generator=g, dtype=F64) / math.sqrt(D)
    return GaussianPrior(torch.full((D,), 0.5, dtype=F64), 0.05 * L @ L.T + 0.01 * torch.eye(D, dtype=F64),
                         SHAPE, path or VPPath().scaled(0.5))


def dense_operator(m: int = 8) -> DenseMatrixOperator:
    g = torch.Generator().manual_seed(1)
    return DenseMatrixOperator(torch.randn(m, D, generator=g, dtype=F64) / math.sqrt(D), SHAPE)


def measurements(op, indices, sigma=0.05, seed=0):
    """Per-sample clean images and y, each drawn from the sample's own generator."""
    x = gaussian_prior().sample(len(indices), SampleRNG.for_indices(indices, seed, stream=3, dtype=F64)).double()
    return GaussianNoise(sigma).sample(op(x), SampleRNG.for_indices(indices, seed, stream=1, dtype=F64))


def rng(indices, seed=0):
    return SampleRNG.for_indices(indices, seed, dtype=F64)


# --- refusals ------------------------------------------------------------------------------
class Quantize(Operator):
    """Non-linear, non-differentiable, no h_dagger."""
    differentiable = False

    def forward(self, x):
        return torch.floor(8 * x) / 8


class QuantizeWithInverse(Quantize):
    def h_dagger(self, y):
        return y


class Smooth(LinearOperator):
    """Linear, differentiable, without an SVD (pinv by conjugate gradients)."""

    def forward(self, x):
        return 0.5 * (x + torch.roll(x, 1, dims=-1))

    def adjoint(self, y):
        return 0.5 * (y + torch.roll(y, -1, dims=-1))


def test_pigdm_noisy_needs_linear_but_noiseless_uses_h_dagger():
    prior, op = gaussian_prior(), QuantizeWithInverse()
    y = op(torch.rand(2, *SHAPE, dtype=F64))
    with pytest.raises(ValueError, match="PiGDM.*linear.*QuantizeWithInverse"):
        PiGDM(5).sample(prior, op, y, rng(range(2)), GaussianNoise(0.05))
    x = PiGDM(5).sample(prior, op, y, rng(range(2)), GaussianNoise(0.0))
    assert x.shape == (2, *SHAPE) and torch.isfinite(x).all()


@pytest.mark.parametrize("name", ["PiGDM", "DMPS", "DDRM", "DDNMPlus", "MomentMatching"])
def test_non_gaussian_noise_is_refused(name):
    op = dense_operator()
    with pytest.raises(ValueError, match=f"{name} assumes Gaussian measurement noise, got PoissonNoise"):
        ALL[name]().sample(gaussian_prior(), op, measurements(op, range(2)), rng(range(2)), PoissonNoise(50.0))


def test_ddnm_plus_refuses_deterministic_steps_on_noisy_data():
    op = dense_operator()
    with pytest.raises(ValueError, match="DDNMPlus.*eta > 0"):
        DDNMPlus(5, eta=0.0).sample(gaussian_prior(), op, measurements(op, range(2)), rng(range(2)), GaussianNoise(0.05))


def test_ddnm_warns_on_noisy_data_and_ddnm_plus_does_not():
    """DDNM is the noiseless method (Eq. 13): noisy y is accepted but named; DDNM+ is the noisy one."""
    import warnings
    op = dense_operator()
    y = measurements(op, range(2))
    with pytest.warns(UserWarning, match="DDNM is the noiseless method.*DDNMPlus"):
        DDNM(3).sample(gaussian_prior(), op, y, rng(range(2)), GaussianNoise(0.05))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DDNM(3).sample(gaussian_prior(), op, y, rng(range(2)), GaussianNoise(0.0))
        DDNMPlus(3).sample(gaussian_prior(), op, y, rng(range(2)), GaussianNoise(0.05))


@pytest.mark.parametrize("kwargs", [dict(num_steps=0), dict(eta=1.5)])
def test_bad_hyperparameters_are_refused(kwargs):
    for factory in (DPS, PiGDM, DMPS, DDRM, DDNM, DDNMPlus, MomentMatching):
        with pytest.raises(ValueError):
            factory(**kwargs)


# --- properties of the updates ----------------------------------------------------------------
@pytest.mark.parametrize("method", [DDNM(20), DDNMPlus(20), DDRM(20, eta_b=1.0)], ids=repr)
def test_noiseless_projection_methods_reproduce_observed_pixels(method):
    """With sigma_y = 0 the range space is replaced by the measurement: A x = y exactly."""
    indices = [0, 1, 2]
    op = RandomInpainting(0.5, SHAPE).bind(indices, seed=4)
    y = measurements(op, indices, sigma=0.0)
    x = method.sample(gaussian_prior(), op, y, rng(indices), GaussianNoise(0.0))
    assert torch.allclose(op(x), y, atol=1e-10)
    assert not torch.allclose(x, op.pinv(y)), "the missing pixels must be filled in"


def test_pigdm_noisy_form_tends_to_the_noiseless_h_dagger_form():
    """Eq. 7 with sigma_y -> 0 is Eq. 8 (the r_t^2 factors cancel)."""
    prior, op = gaussian_prior(), dense_operator()
    y = measurements(op, range(3), sigma=0.0)
    exact = PiGDM(10).sample(prior, op, y, rng(range(3)), GaussianNoise(0.0))
    tiny = PiGDM(10).sample(prior, op, y, rng(range(3)), GaussianNoise(1e-7))
    assert torch.allclose(exact, tiny, atol=1e-5)
    assert not torch.allclose(exact, PiGDM(10).sample(prior, op, y, rng(range(3)), GaussianNoise(0.1)), atol=1e-3)


def test_pigdm_svd_and_conjugate_gradient_paths_agree():
    """The noisy-form inverse through the SVD equals the CG solution for the same matrix."""
    prior, op = gaussian_prior(), dense_operator()

    class NoSVD(LinearOperator):
        def forward(self, x):
            return op(x)

        def adjoint(self, y):
            return op.adjoint(y)

    y = measurements(op, range(3))
    a = PiGDM(10).sample(prior, op, y, rng(range(3)), GaussianNoise(0.05))
    b = PiGDM(10, cg_tol=1e-20).sample(prior, NoSVD(SHAPE), y, rng(range(3)), GaussianNoise(0.05))
    assert torch.allclose(a, b, atol=1e-8)


@pytest.mark.parametrize("name", ["DMPS", "MomentMatching", "PiGDM", "DPS", "DDRM"])
def test_flow_path_starting_at_pure_noise_stays_finite(name):
    """a = 0 at t = 1 on the rectified-flow path: no division by zero."""
    prior, op = gaussian_prior(RectifiedFlowPath().scaled(0.5)), dense_operator()
    method = ALL[name]()
    method.eta = 0.0
    x = method.sample(prior, op, measurements(op, range(3)), rng(range(3)), GaussianNoise(0.05))
    assert torch.isfinite(x).all()
