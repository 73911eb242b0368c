"""Noise paths, parameterisations, analytic priors, per-sample RNG, the generic solver step."""
import math

import pytest
import torch

from lit_ip.methods.base import Unconditional
from lit_ip.operators.dense import DenseMatrixOperator
from lit_ip.priors import parameterization as P
from lit_ip.priors.analytic import EmpiricalPrior, GaussianMixturePrior, GaussianPrior
from lit_ip.priors.paths import RectifiedFlowPath, VEPath, VPPath, path_from_config
from lit_ip.rng import SampleRNG
from lit_ip.sampling.schedules import UniformTime

PATHS = [VPPath(), VPPath(schedule="cosine"), VEPath(), RectifiedFlowPath()]


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _random_cov(d, seed=0):
    g = torch.Generator().manual_seed(seed)
    L = torch.randn(d, d, generator=g) / math.sqrt(d)
    return L @ L.T + 0.05 * torch.eye(d)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: repr(p))
def test_path_grid_descends_and_round_trips_config(path):
    grid = torch.stack(UniformTime().times(path, 20))
    assert torch.all(grid[1:] < grid[:-1])
    a, b = path.coefficients(grid)
    snr = a / b
    assert torch.all(snr[1:] > snr[:-1]), "signal-to-noise ratio must increase along the grid"
    assert path_from_config(path.config()).config() == path.config()
    a0, b0 = path.coefficients(None)
    assert float(a0) == 1 and float(b0) == 0


def test_vp_is_variance_preserving_and_scaling_only_touches_b():
    p = VPPath()
    t = torch.tensor([0.0, 10.5, 500.0, 999.0])
    a, b = p.coefficients(t)
    assert torch.allclose(a ** 2 + b ** 2, torch.ones(4))
    a2, b2 = p.scaled(0.5).coefficients(t)
    assert torch.allclose(a2, a) and torch.allclose(b2, b / 2)
    # DDPM linear betas: alpha_bar at the last step is ~4e-5 (Ho et al. 2020)
    assert 1e-5 < float(a[-1] ** 2) < 1e-4


def test_path_derivatives_match_finite_differences():
    for path in PATHS:
        t = torch.stack(UniformTime().times(path, 7))[1:-1] * 0.97 + 0.0137 * (path.t_max - path.t_min)  # off the VP integer knots
        h = 1e-4 * (path.t_max - path.t_min)
        da, db = path.derivatives(t)
        ap, bp = path.coefficients(t + h)
        am, bm = path.coefficients(t - h)
        assert torch.allclose(da, (ap - am) / (2 * h), rtol=1e-3, atol=1e-6)
        assert torch.allclose(db, (bp - bm) / (2 * h), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("prediction", P.PREDICTIONS)
def test_parameterisations_invert_their_targets(prediction):
    path = VPPath() if prediction == "v" else RectifiedFlowPath()
    t = torch.tensor(0.3) if prediction != "v" else torch.tensor(300.0)
    a, b = path.coefficients(t)
    da, db = path.derivatives(t)
    x0, eps = torch.randn(4, 3), torch.randn(4, 3)
    x_t = a * x0 + b * eps
    target = P.target_from(prediction, x0, eps, a, b, da, db)
    assert torch.allclose(P.x0_from(prediction, target, x_t, a, b, da, db), x0, atol=1e-10)
    assert torch.allclose(P.eps_from_x0(x0, x_t, a, b), eps, atol=1e-10)
    s = P.score_from_x0(x0, x_t, a, b)
    assert torch.allclose(s, -eps / b) and torch.allclose(P.x0_from_score(s, x_t, a, b), x0)


def _gmm(d=6, K=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(K, generator=g) + 0.2
    means = torch.randn(K, d, generator=g)
    covs = torch.stack([_random_cov(d, seed + k) * 0.3 for k in range(K)])
    return GaussianMixturePrior(w, means, covs, (1, 2, 3))


def test_gaussian_denoiser_is_the_exact_conditional_mean():
    d = 8
    C, m = _random_cov(d), torch.linspace(-1, 1, d)
    prior = GaussianPrior(m, C, (1, 2, 4))
    for t in (50.0, 400.0, 900.0):
        a, b = prior.path.coefficients(torch.tensor(t))
        x_t = torch.randn(5, 1, 2, 4)
        # direct Gaussian conditioning: cov(x0, x_t) = a C, cov(x_t) = a^2 C + b^2 I
        S = a ** 2 * C + b ** 2 * torch.eye(d)
        ref = m + (x_t.flatten(1) - a * m) @ torch.linalg.solve(S, a * C)
        assert torch.allclose(prior.denoise(x_t, t).flatten(1), ref, atol=1e-8)


def test_mixture_denoiser_satisfies_tweedie_on_the_closed_form_density():
    prior = _gmm()
    for t in (0.2, 0.7):
        prior.path = RectifiedFlowPath()
        a, b = prior.path.coefficients(torch.tensor(t))
        x = torch.randn(4, 6, requires_grad=True)
        logp = torch.logsumexp(torch.stack([
            torch.log(prior.weights[k]) + torch.distributions.MultivariateNormal(
                a * prior.means[k], a ** 2 * prior.covs[k] + b ** 2 * torch.eye(6)).log_prob(x)
            for k in range(3)]), 0)
        score = torch.autograd.grad(logp.sum(), x)[0]
        x0 = prior.denoise(x.detach().view(4, 1, 2, 3), t).flatten(1)
        assert torch.allclose(x0, P.x0_from_score(score, x.detach(), a, b), atol=1e-8)


def test_empirical_prior_matches_mixture_of_diracs():
    imgs = torch.rand(5, 1, 2, 3)
    emp = EmpiricalPrior(imgs)
    mix = GaussianMixturePrior(torch.ones(5), imgs.flatten(1), torch.zeros(5, 6, 6), (1, 2, 3))
    x = torch.randn(3, 1, 2, 3)
    assert torch.allclose(emp.denoise(x, 300.0), mix.denoise(x, 300.0), atol=1e-8)


def test_gaussian_posterior_is_bayes_rule():
    d = 6
    prior = GaussianPrior(torch.zeros(d), _random_cov(d), (1, 2, 3))
    A = torch.randn(3, d)
    y = torch.randn(3)
    post = prior.posterior(A, y, 0.3)
    # information form: Sigma^-1 = C^-1 + A^T A / s^2, mean = Sigma A^T y / s^2
    prec = torch.linalg.inv(prior.covs[0]) + A.T @ A / 0.09
    cov = torch.linalg.inv(prec)
    assert torch.allclose(post.cov_matrix(), cov, atol=1e-8)
    assert torch.allclose(post.mean_vector(), cov @ A.T @ y / 0.09, atol=1e-8)


def test_sample_rng_rows_do_not_depend_on_batch_composition():
    a = SampleRNG.for_indices([3, 7, 9], seed=5).randn((3, 4))
    b = SampleRNG.for_indices([9, 3], seed=5).randn((2, 4))
    assert torch.equal(a[0].float(), b[1].float()) and torch.equal(a[2].float(), b[0].float())
    c = SampleRNG.for_indices([3], seed=6).randn((1, 4))
    assert not torch.equal(a[0].float(), c[0].float())


@pytest.mark.parametrize("path,eta,steps", [(VPPath(), 1.0, 250), (RectifiedFlowPath(), 0.0, 60)],
                         ids=["ddpm", "flow-euler"])
def test_unconditional_sampler_recovers_a_gaussian_prior(path, eta, steps):
    d, n = 6, 3000
    C, m = _random_cov(d, 3), torch.linspace(0, 1, d)
    prior = GaussianPrior(m, C, (1, 2, 3), path)
    rng = SampleRNG.for_indices(range(n), seed=0, dtype=torch.float64)
    y = torch.zeros(n, d)
    x = Unconditional(steps, eta).sample(prior, DenseMatrixOperator(torch.eye(d), (1, 2, 3)), y, rng).flatten(1)
    # standard errors with n samples: mean ~ sqrt(diag C / n), cov ~ sqrt(2/n) * |C|
    assert (x.mean(0) - m).abs().max() < 4 * math.sqrt(float(C.diagonal().max()) / n) + 0.01
    assert (torch.cov(x.T) - C).norm() / C.norm() < 4 * math.sqrt(2 / n) + 0.03
