"""Properties every method must have, run over the one registry ``lit_ip.methods.registry.METHODS``.

Construction from configs, float32 network priors on VP and rectified-flow paths, refusals of
operators that lack a required property, bad measurements, batch independence, determinism, the
``num_samples`` seeding contract and counted network evaluations. (Accuracy against exact
posteriors: tests/test_exact_posterior.py and tests/test_more_methods.py.)
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lit_ip.api import posterior_sample
from lit_ip.methods.base import Method
from lit_ip.methods.registry import METHODS, build
from lit_ip.operators.base import LinearOperator, Operator
from lit_ip.operators.dense import DenseMatrixOperator
from lit_ip.operators.inpainting import RandomInpainting
from lit_ip.operators.noise import GaussianNoise
from lit_ip.priors.analytic import GaussianMixturePrior
from lit_ip.priors.base import Prior
from lit_ip.priors.paths import RectifiedFlowPath, VPPath
from lit_ip.rng import SampleRNG

SHAPE, D, M, SIGMA = (1, 4, 4), 16, 8, 0.05
F64 = torch.float64
NAMES = sorted(METHODS)
PATHS = {"vp": lambda: VPPath().scaled(0.5), "rf": lambda: RectifiedFlowPath().scaled(0.5)}


def mixture_prior(path="vp") -> GaussianMixturePrior:
    g = torch.Generator().manual_seed(0)
    u = torch.randn(D, generator=g, dtype=F64)
    L = torch.randn(D, D, generator=g, dtype=F64) / math.sqrt(D)
    C = 0.02 * L @ L.T + 0.005 * torch.eye(D, dtype=F64)
    means = torch.stack([0.5 + 0.1 * u, 0.5 - 0.1 * u])
    return GaussianMixturePrior(torch.ones(2, dtype=F64), means, torch.stack([C, C]), SHAPE, PATHS[path]())


def dense_operator() -> DenseMatrixOperator:
    """A dense random operator with orthogonal rows (``A A^T = I / 2``: DPS-w's reference task needs
    equal singular values and refuses other operators)."""
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(D, M, generator=g, dtype=F64))
    return DenseMatrixOperator(q.T / math.sqrt(2), SHAPE)


def measurements(op, indices, dtype=F64) -> torch.Tensor:
    x = mixture_prior().sample(len(indices), SampleRNG.for_indices(indices, 0, "data", dtype=F64)).to(F64)
    y = GaussianNoise(SIGMA).sample(op(x), SampleRNG.for_indices(indices, 0, "measurement", dtype=F64))
    return y.to(dtype)


def draw(name, indices, op=None, seed=0, **kw):
    op = op if op is not None else dense_operator()
    rng = SampleRNG.for_indices(indices, seed, dtype=F64)
    return build(name, **kw).sample(mixture_prior(), op, measurements(op, indices), rng, GaussianNoise(SIGMA))


# --- construction -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_builds_from_a_class_path_config(name):
    from jsonargparse import ArgumentParser
    parser = ArgumentParser()
    parser.add_argument("--method", type=Method)
    cfg = parser.parse_object({"method": METHODS[name].config()})
    method = parser.instantiate(cfg).method
    assert type(method) is METHODS[name].cls
    assert all(getattr(method, k) == v for k, v in METHODS[name].small.items())


@pytest.mark.parametrize("name", NAMES)
def test_bad_step_counts_are_refused(name):
    with pytest.raises(ValueError, match="num_steps"):
        build(name, num_steps=0)


# --- determinism, batches, seeding --------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_samples_other_seed_other_samples(name):
    a, b, c = draw(name, [0, 1, 2]), draw(name, [0, 1, 2]), draw(name, [0, 1, 2], seed=1)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c), f"{name} ignores the seed"


@pytest.mark.parametrize("masks", [False, True], ids=["dense", "per-sample-masks"])
@pytest.mark.parametrize("name", NAMES)
def test_batch_of_four_gives_the_samples_of_batches_of_one(name, masks):
    family = RandomInpainting(0.5, SHAPE) if masks else None
    op = (lambda idx: family.bind(idx, seed=3)) if masks else (lambda idx: dense_operator())
    batch = draw(name, [2, 5, 9, 11], op([2, 5, 9, 11]))
    for j, i in enumerate([2, 5, 9, 11]):
        alone = draw(name, [i], op([i]))
        assert torch.allclose(batch[j], alone[0], atol=1e-9, rtol=1e-7), \
            f"{name}: sample {i} changes with the batch ({float((batch[j] - alone[0]).abs().max()):.2e})"


@pytest.mark.parametrize("name", NAMES)
def test_first_of_n_samples_is_the_single_sample(name):
    """The README's contract: sample 0 of ``num_samples: n`` is the sample of ``num_samples: 1``;
    the other samples differ from it."""
    prior, op = mixture_prior(), dense_operator()
    y = measurements(op, [4, 7])
    one = posterior_sample(prior, op, y, build(name), GaussianNoise(SIGMA), num_samples=1, seed=3, indices=[4, 7])
    three = posterior_sample(prior, op, y, build(name), GaussianNoise(SIGMA), num_samples=3, seed=3, indices=[4, 7])
    assert torch.allclose(three[:, 0], one[:, 0], atol=1e-9, rtol=1e-7), name
    assert not torch.allclose(three[:, 1], three[:, 0]), f"{name}: repeated samples are identical"


# --- counted network evaluations ------------------------------------------------------------------
@pytest.mark.parametrize("path", ["vp", "rf"])
@pytest.mark.parametrize("name", NAMES)
def test_counted_evaluations_are_the_declared_ones(name, path):
    prior, op = mixture_prior(path), dense_operator()
    method = build(name)
    prior.evaluations.reset()
    method.sample(prior, op, measurements(op, [0, 1, 2]), SampleRNG.for_indices([0, 1, 2], dtype=F64),
                  GaussianNoise(SIGMA))
    counted = prior.evaluations.per_sample(3)
    assert counted["nfe"] >= 1
    declared = method.expected_nfe(prior)
    if declared is None:
        pytest.skip(f"{name}'s evaluations depend on the data (counted: {counted})")
    for key, value in declared.items():
        if value is not None:
            assert counted[key] == value, (name, key, counted, declared)


# --- network priors ------------------------------------------------------------------------------
class TinyNetPrior(Prior):
    """A small conv net as an x0-predictor (float32): exercises backward and double backward."""

    def __init__(self, path):
        super().__init__(PATHS[path](), SHAPE)
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.SiLU(),
                                 nn.Conv2d(8, 1, 3, padding=1))

    def denoise(self, x_t, t):
        a, b = self.coefficients(t, x_t)
        level = torch.log(b / a) if float(a) > 0 else torch.full_like(b, 10.0)
        inp = torch.cat([x_t / (a ** 2 * 0.25 + b ** 2).sqrt(), level.expand_as(x_t)], 1)
        return 0.5 + 0.1 * self.net(inp)


@pytest.mark.parametrize("path", ["vp", "rf"])
@pytest.mark.parametrize("name", NAMES)
def test_runs_on_a_network_prior_in_float32(name, path):
    prior, op = TinyNetPrior(path), DenseMatrixOperator(dense_operator().matrix.float(), SHAPE)
    y = measurements(dense_operator(), range(2), torch.float32)
    rng = SampleRNG.for_indices(range(2))
    method = build(name)
    if METHODS[name].analytic_only:
        with pytest.raises(ValueError, match="non-isotropic"):
            method.sample(prior, op, y, rng, GaussianNoise(SIGMA))
        return
    x = method.sample(prior, op, y, rng, GaussianNoise(SIGMA))
    assert x.dtype == torch.float32 and x.shape == (2, *SHAPE) and torch.isfinite(x).all()
    assert not any(p.grad is not None for p in prior.parameters()), "a method must not touch network gradients"


# --- refusals ------------------------------------------------------------------------------------
class NoSVD(LinearOperator):
    """Linear and differentiable, without an SVD."""

    def __init__(self):
        super().__init__(SHAPE)
        self.A = dense_operator().matrix

    def forward(self, x):
        return x.flatten(1) @ self.A.T.to(x)

    def adjoint(self, y):
        return (y @ self.A.to(y)).view(-1, *SHAPE)


class Squares(Operator):
    """Non-linear, differentiable, without h_dagger."""

    def forward(self, x):
        return x.flatten(1)[:, :M] ** 2


class Rounding(Operator):
    """Non-linear and non-differentiable."""
    differentiable = False

    def forward(self, x):
        return torch.round(x.flatten(1)[:, :M] * 8) / 8


OPERATORS = {"nosvd": NoSVD, "nonlinear": Squares, "nondiff": Rounding}


@pytest.mark.parametrize("operator", sorted(OPERATORS))
@pytest.mark.parametrize("name", NAMES)
def test_operators_without_a_required_property_are_refused_naming_both(name, operator):
    op, method = OPERATORS[operator](), build(name)
    try:
        method.check_operator(op)
    except ValueError:
        pass
    else:
        pytest.skip(f"{name} accepts {type(op).__name__}")
    y = op(torch.rand(2, *SHAPE, dtype=F64))
    with pytest.raises(ValueError) as err:
        method.sample(mixture_prior(), op, y, SampleRNG.for_indices([0, 1], dtype=F64), GaussianNoise(SIGMA))
    assert method.name in str(err.value) and type(op).__name__ in str(err.value)


def test_the_refusal_test_is_not_vacuous():
    """Each test operator is refused by at least one method and accepted by another."""
    for cls in OPERATORS.values():
        verdicts = set()
        for name in NAMES:
            try:
                build(name).check_operator(cls())
                verdicts.add("accepted")
            except ValueError:
                verdicts.add("refused")
        assert verdicts == {"accepted", "refused"}, cls.__name__


@pytest.mark.parametrize("name", NAMES)
def test_bad_measurements_give_clear_errors(name):
    prior, op = mixture_prior(), dense_operator()
    y = measurements(op, range(2))
    rng = SampleRNG.for_indices(range(2), dtype=F64)
    with pytest.raises(ValueError, match=r"measurement y has shape \(7,\)"):
        build(name).sample(prior, op, y[:, :7], rng, GaussianNoise(SIGMA))
    y[1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite.*\[1\]"):
        build(name).sample(prior, op, y, rng, GaussianNoise(SIGMA))
