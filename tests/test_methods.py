"""Posterior samplers: determinism, batch independence, refusals, bad inputs, data consistency,
network priors, construction from configs. (Accuracy: tests/test_exact_posterior.py.)"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lit_ip.methods import (DDNM, DDRM, DMPS, DPS, DDNMPlus, GuidedMethod, Method, MomentMatching,
                            PiGDM, Unconditional)
from lit_ip.operators.base import LinearOperator, Operator
from lit_ip.operators.dense import DenseMatrixOperator
from lit_ip.operators.inpainting import RandomInpainting
from lit_ip.operators.noise import GaussianNoise, PoissonNoise
from lit_ip.priors.analytic import GaussianPrior
from lit_ip.priors.base import Prior
from lit_ip.priors.paths import RectifiedFlowPath, VPPath
from lit_ip.sampling.rng import SampleRNG

SHAPE, D = (1, 4, 4), 16
F64 = torch.float64

#: every method, small step counts; (factory, needs noise > 0)
ALL = {
    "DPS": lambda: DPS(12, zeta=0.01),
    "PiGDM": lambda: PiGDM(12),
    "DMPS": lambda: DMPS(12),
    "DDRM": lambda: DDRM(12),
    "DDNM": lambda: DDNM(12),
    "DDNMPlus": lambda: DDNMPlus(12),
    "MomentMatching": lambda: MomentMatching(12),
}


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


# --- determinism and batch independence ----------------------------------------------------
@pytest.mark.parametrize("name", list(ALL))
def test_same_seed_same_samples(name):
    prior, op = gaussian_prior(), dense_operator()
    y = measurements(op, range(3))
    a = ALL[name]().sample(prior, op, y, rng(range(3)), GaussianNoise(0.05))
    b = ALL[name]().sample(prior, op, y, rng(range(3)), GaussianNoise(0.05))
    c = ALL[name]().sample(prior, op, y, rng(range(3), seed=1), GaussianNoise(0.05))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c), f"{name} ignores the seed"


@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("operator", ["dense", "inpainting"])
def test_sample_does_not_depend_on_batch(name, operator):
    """Index 5 gets the same sample alone and inside a batch with other measurements (and, for
    inpainting, other per-sample masks)."""
    prior = gaussian_prior()
    family = RandomInpainting(0.5, SHAPE) if operator == "inpainting" else None

    def draw(indices):
        op = family.bind(indices, seed=3) if family else dense_operator()
        y = measurements(op, indices)
        return ALL[name]().sample(prior, op, y, rng(indices), GaussianNoise(0.05))

    batch = draw([2, 5, 9, 11])
    alone = draw([5])
    assert torch.allclose(batch[1], alone[0], atol=1e-9, rtol=1e-7), \
        f"{name}: sample 5 changes with the batch (max diff {float((batch[1] - alone[0]).abs().max()):.2e})"
    assert not torch.allclose(batch[0], batch[1])


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


@pytest.mark.parametrize("name,operator", [
    ("DPS", Quantize()), ("PiGDM", Quantize()), ("DMPS", Smooth()), ("DDRM", Smooth()),
    ("DDNMPlus", Smooth()), ("DDNM", Quantize()), ("MomentMatching", Quantize()),
])
def test_unsuitable_operator_is_refused_naming_both(name, operator):
    y = operator(torch.rand(2, *SHAPE, dtype=F64))
    with pytest.raises(ValueError) as err:
        ALL[name]().sample(gaussian_prior(), operator, y, rng(range(2)), GaussianNoise(0.05))
    assert name in str(err.value) and type(operator).__name__ in str(err.value)


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


@pytest.mark.parametrize("name", list(ALL))
def test_bad_measurements_give_clear_errors(name):
    prior, op = gaussian_prior(), dense_operator()
    y = measurements(op, range(2))
    with pytest.raises(ValueError, match=r"measurement y has shape \(7,\)"):
        ALL[name]().sample(prior, op, y[:, :7], rng(range(2)), GaussianNoise(0.05))
    y[1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite.*\[1\]"):
        ALL[name]().sample(prior, op, y, rng(range(2)), GaussianNoise(0.05))


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


# --- network priors --------------------------------------------------------------------------
class TinyNetPrior(Prior):
    """A small conv net as an x0-predictor (float32): exercises backward and double backward."""

    def __init__(self):
        super().__init__(VPPath().scaled(0.5), SHAPE)
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.SiLU(),
                                 nn.Conv2d(8, 1, 3, padding=1))

    def denoise(self, x_t, t):
        a, b = self.coefficients(t, x_t)
        inp = torch.cat([x_t / (a ** 2 * 0.25 + b ** 2).sqrt(), (b / a).log().expand_as(x_t)], 1)
        return 0.5 + 0.1 * self.net(inp)


@pytest.mark.parametrize("name", list(ALL))
def test_methods_run_on_a_network_prior_in_float32(name):
    prior, op = TinyNetPrior(), dense_operator()
    y = measurements(op, range(2)).float()
    x = ALL[name]().sample(prior, op, y, SampleRNG.for_indices(range(2)), GaussianNoise(0.05))
    assert x.dtype == torch.float32 and x.shape == (2, *SHAPE) and torch.isfinite(x).all()
    assert not any(p.grad is not None for p in prior.parameters()), "a method must not touch network gradients"


# --- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize("cls,init", [
    (DPS, dict(num_steps=50, zeta=0.3)), (PiGDM, dict(num_steps=20, eta=0.5)), (DMPS, dict(scale=2.0)),
    (DDRM, dict(eta=0.85, eta_b=1.0)), (DDNM, dict(num_steps=30)), (DDNMPlus, dict(eta=0.5)),
    (MomentMatching, dict(cg_iters=5)), (Unconditional, dict(eta=0.0)),
])
def test_methods_build_from_class_path_configs(cls, init):
    from jsonargparse import ArgumentParser
    parser = ArgumentParser()
    parser.add_argument("--method", type=Method)
    cfg = parser.parse_object({"method": {"class_path": f"{cls.__module__}.{cls.__name__}", "init_args": init}})
    method = parser.instantiate(cfg).method
    assert type(method) is cls and isinstance(method, GuidedMethod)
    assert all(getattr(method, k) == v for k, v in init.items())
