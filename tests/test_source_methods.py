"""Posterior sampling on priors with a restricted (subspace Gaussian) source: OTODE's source-aware
estimate against dense Gaussian conditioning, its samples against the exact subspace posterior, and the
refusal of methods whose formulas assume N(0, I) noise (lit_ip/methods/source.py)."""
import math

import pytest
import torch

from lit_ip.evaluation.exact import gaussian_tolerances
from lit_ip.methods import DPS, OTODE, PiGDM, Unconditional
from lit_ip.methods.base import StepState
from lit_ip.operators.inpainting import MaskInpainting
from lit_ip.operators.linalg import dense_matrix
from lit_ip.operators.noise import GaussianNoise
from lit_ip.priors.paths import RectifiedFlowPath
from lit_ip.priors.subspace_source import SubspaceGaussianSource, SubspaceSourceGaussian
from lit_ip.rng import BatchRNG

D, K, V, SIGMA = 8, 3, 0.05, 0.05
SHAPE = (1, 1, D)


def problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(D, K, generator=g, dtype=torch.float64))
    mean = 0.3 + 0.4 * torch.rand(D, generator=g, dtype=torch.float64)
    src = SubspaceGaussianSource(0.1 * torch.randn(D, generator=g, dtype=torch.float64), U, SHAPE)
    src = src.double()
    prior = SubspaceSourceGaussian(mean, V * torch.eye(D, dtype=torch.float64), src, RectifiedFlowPath())
    mask = torch.zeros(D, dtype=torch.float64)
    mask[torch.randperm(D, generator=g)[:5]] = 1
    op = MaskInpainting(mask.view(1, 1, D), SHAPE)
    x = mean + math.sqrt(V) * torch.randn(D, generator=g, dtype=torch.float64)
    y = op(x.view(1, *SHAPE)) + SIGMA * torch.randn(op.output_shape(SHAPE), generator=g, dtype=torch.float64)
    return prior, op, y


def dense_posterior_mean(prior, A, y, x_t, a, b):
    """E[x0 | x_t, y] by conditioning the joint Gaussian of (x0, x_t, y)."""
    U, mu, m = prior.source_model.basis.double(), prior.source_model.mean.double(), prior.mean
    I = torch.eye(D, dtype=torch.float64)
    cov_xw = torch.cat([a * V * I, V * A.T], 1)
    var_w = torch.cat([torch.cat([a ** 2 * V * I + b ** 2 * U @ U.T, a * V * A.T], 1),
                       torch.cat([a * V * A, V * A @ A.T + SIGMA ** 2 * torch.eye(A.shape[0], dtype=torch.float64)], 1)])
    w = torch.cat([x_t.flatten() - a * m - b * mu, y.flatten() - A @ m])
    return m + cov_xw @ torch.linalg.solve(var_w, w)


@pytest.mark.parametrize("jacobian", [True, False])
@pytest.mark.parametrize("t", [0.9, 0.5, 0.1])
def test_source_aware_estimate_is_the_exact_posterior_mean_for_isotropic_gaussian_data(t, jacobian):
    """For data N(m, v I) the Gaussian model is exact, so x0_c = E[x0 | x_t, y] (to float error), by the
    vector-Jacobian product and by its Gaussian-model value alike."""
    prior, op, y = problem()
    A = dense_matrix(op, SHAPE)
    method = OTODE(num_steps=10, jacobian=jacobian)
    p = method.setup(prior, op, y, GaussianNoise(SIGMA))
    tt = torch.tensor(t, dtype=torch.float64)
    a, b = prior.coefficients(tt, y)
    x_t = (a * prior.mean + b * prior.source_model.sample(1, torch.Generator().manual_seed(3)).double().flatten()
           + 0.05 * torch.randn(D, generator=torch.Generator().manual_seed(4), dtype=torch.float64)).view(1, *SHAPE)
    x_in = x_t.clone().requires_grad_(True)
    s = StepState(x_in, prior.denoise(x_in, tt), tt, None, a, b, a, b, torch.zeros(()), 0)
    got = method.estimate(s, p).flatten()
    ref = dense_posterior_mean(prior, A, y, x_t, a, b)
    assert torch.allclose(got, ref, atol=1e-9), float((got - ref).abs().max())
    iso = prior.denoise(x_t, tt).flatten()          # the test can fail: the unconditional estimate differs
    assert (iso - ref).abs().max() > 1e-3


@pytest.mark.parametrize("jacobian", [True, False])
def test_samples_from_the_source_match_the_exact_subspace_posterior(jacobian):
    """From t = 1 every Euler step keeps P_perp x0 = P_perp m (lit_ip/methods/source.py), and in the
    subspace the source is N(0, I_k): the samples are exactly those of p(c | y, P_perp x0 = P_perp m),
    x0 = P_perp m + U c -- checked by whitened moments; Unconditional(eta=0) misses them. The Euler
    discretisation error of the covariance is O(1 / steps): measured cov error 0.42 / 0.25 / 0.155 / 0.11
    at 50 / 100 / 200 / 400 steps (n = 2000; tolerance 0.153), hence 800 steps."""
    prior, op, y = problem()
    A = dense_matrix(op, SHAPE)
    U, m = prior.source_model.basis.double(), prior.mean
    perp = m - U @ (U.T @ m)
    B = A @ U
    prec = torch.eye(K, dtype=torch.float64) / V + B.T @ B / SIGMA ** 2
    cov = torch.linalg.inv(prec)
    mean = cov @ (U.T @ m / V + B.T @ (y.flatten() - A @ perp) / SIGMA ** 2)
    n = 2000
    noise = GaussianNoise(SIGMA)
    x = OTODE(num_steps=800, t_start=1.0, jacobian=jacobian).sample(prior, op, y.expand(n, *y.shape[1:]).clone(), BatchRNG(n, 1), noise)
    x = x.flatten(1).double()
    assert torch.allclose(x - x @ U @ U.T, perp.expand(n, -1), atol=1e-8)
    L = torch.linalg.cholesky(cov)
    tol = gaussian_tolerances(n, K)

    def errors(samples):
        z = torch.linalg.solve_triangular(L, (samples @ U - mean).T, upper=False).T
        return float(z.mean(0).norm()), float((torch.cov(z.T) - torch.eye(K, dtype=torch.float64)).norm())

    got = errors(x)
    assert got[0] < tol["mean"] and got[1] < tol["cov"], (got, tol)
    u = Unconditional(num_steps=100, eta=0.0).sample(prior, op, y.expand(n, *y.shape[1:]).clone(), BatchRNG(n, 1), noise)
    bad = errors(u.flatten(1).double())
    assert bad[0] > 5 * tol["mean"], bad


@pytest.mark.parametrize("method", [DPS(num_steps=5), PiGDM(num_steps=5), Unconditional(num_steps=5, eta=1.0)])
def test_isotropic_noise_methods_refuse_a_restricted_source(method):
    prior, op, y = problem()
    with pytest.raises(ValueError, match="restricted Gaussian source"):
        method.sample(prior, op, y, BatchRNG(1, 0), GaussianNoise(SIGMA))


def test_noiseless_measurement_is_refused_with_a_restricted_source():
    prior, op, y = problem()
    with pytest.raises(ValueError, match="sigma_y > 0"):
        OTODE(num_steps=5).sample(prior, op, y, BatchRNG(1, 0), GaussianNoise(0.0))


def test_isotropic_prior_is_unchanged_by_the_init_option():
    """On an N(0, I) prior the default (pinv) state is the paper's; 'gaussian' differs only in x_init."""
    from lit_ip.evaluation.exact import gaussian_problem
    pr = gaussian_problem("rf", sigma=0.05, operator="inpainting")
    a = OTODE(num_steps=10).sample(pr.prior, pr.operator, pr.batch(4), BatchRNG(4, 0), GaussianNoise(0.05))
    b = OTODE(num_steps=10, init="gaussian").sample(pr.prior, pr.operator, pr.batch(4), BatchRNG(4, 0),
                                                     GaussianNoise(0.05))
    assert torch.isfinite(a).all() and torch.isfinite(b).all() and not torch.allclose(a, b)
