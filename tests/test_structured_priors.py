"""Structured covariances (isotropic, diagonal, shared, low-rank) give the same denoiser, posterior
and densities as the same mixture with dense covariances."""
import math

import pytest
import torch

from lit_ip.priors.analytic import GaussianMixturePrior, GaussianPrior
from lit_ip.priors.paths import RectifiedFlowPath
from lit_ip.rng import SampleRNG

F64 = torch.float64
SHAPE, D, K = (1, 3, 4), 12, 4


def _parts(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(K, generator=g, dtype=F64) + 0.1
    means = torch.randn(K, D, generator=g, dtype=F64)
    return g, w, means


def _structured(kind, seed=0):
    """(structured prior, the same prior with dense covariances)."""
    g, w, means = _parts(seed)
    if kind == "isotropic":
        v = torch.rand(K, generator=g, dtype=F64) + 0.2
        return GaussianMixturePrior(w, means, v, SHAPE), GaussianMixturePrior(w, means, v[:, None, None] * torch.eye(D, dtype=F64), SHAPE)
    if kind == "diagonal":
        v = torch.rand(K, D, generator=g, dtype=F64) + 0.05
        return GaussianMixturePrior(w, means, v, SHAPE), GaussianMixturePrior(w, means, torch.diag_embed(v), SHAPE)
    if kind in ("low_rank", "low_rank_shared"):
        r = 3
        Q = torch.linalg.qr(torch.randn(1 if kind.endswith("shared") else K, D, r, generator=g, dtype=F64))[0]
        lam = torch.rand(K, r, generator=g, dtype=F64) * 2
        c = torch.rand(K, generator=g, dtype=F64) * 0.3 + 0.05
        prior = GaussianMixturePrior.low_rank(w, means, Q, lam, c, SHAPE)
        dense = c[:, None, None] * torch.eye(D, dtype=F64) + torch.einsum(
            "kdr,kr,ker->kde", Q.expand(K, -1, -1), lam - c[:, None], Q.expand(K, -1, -1))
        return prior, GaussianMixturePrior(w, means, dense, SHAPE)
    if kind == "shared":
        M = torch.randn(D, D, generator=g, dtype=F64)
        C = M @ M.T / D + 0.01 * torch.eye(D, dtype=F64)
        prior = GaussianMixturePrior(w, means, C.expand(K, D, D), SHAPE)
        assert prior.Q.shape[0] == 1          # one eigenbasis for all components
        per = GaussianMixturePrior(w, means, C.expand(K, D, D).clone(), SHAPE)
        per.register_buffer("Q", per.Q.expand(K, -1, -1).clone())   # force the per-component path
        return prior, per
    raise ValueError(kind)


KINDS = ("isotropic", "diagonal", "low_rank", "low_rank_shared", "shared")


@pytest.mark.parametrize("kind", KINDS)
def test_structured_denoiser_equals_dense(kind):
    fast, dense = _structured(kind)
    torch.testing.assert_close(fast.covs, dense.covs, rtol=0, atol=1e-12)
    x = torch.randn(7, *SHAPE, dtype=F64)
    for t in (5.0, 300.0, 990.0):
        torch.testing.assert_close(fast.denoise(x, t), dense.denoise(x, t), rtol=0, atol=1e-10)
    fast.path = dense.path = RectifiedFlowPath()
    torch.testing.assert_close(fast.denoise(x, 0.4), dense.denoise(x, 0.4), rtol=0, atol=1e-10)
    torch.testing.assert_close(fast.cov_matrix(), dense.cov_matrix(), rtol=0, atol=1e-10)
    assert fast.data_var == pytest.approx(dense.data_var, rel=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_structured_posterior_and_density_equal_dense(kind):
    fast, dense = _structured(kind)
    g = torch.Generator().manual_seed(3)
    A = torch.randn(2, D, generator=g, dtype=F64)
    y = torch.randn(2, generator=g, dtype=F64)
    pf, pd = fast.posterior(A, y, 0.3), dense.posterior(A, y, 0.3)
    if kind in ("isotropic", "low_rank", "low_rank_shared"):
        assert pf.kind == "eigen" and pf.rank < D      # stays low-rank
    torch.testing.assert_close(pf.weights, pd.weights, rtol=0, atol=1e-10)
    torch.testing.assert_close(pf.means, pd.means, rtol=0, atol=1e-10)
    torch.testing.assert_close(pf.covs, pd.covs, rtol=0, atol=1e-10)
    x = torch.randn(5, *SHAPE, dtype=F64)
    ref = torch.stack([torch.log(pd.weights[k]) + torch.distributions.MultivariateNormal(
        pd.means[k], pd.covs[k]).log_prob(x.flatten(1)) for k in range(K)], 1)
    torch.testing.assert_close(pf.component_log_density(x), ref, rtol=0, atol=1e-8)
    for t in (20.0, 600.0):
        torch.testing.assert_close(pf.denoise(x, t), pd.denoise(x, t), rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", ("isotropic", "low_rank"))
def test_structured_samples_have_the_exact_moments(kind):
    fast, _ = _structured(kind)
    x = fast.sample(20000, SampleRNG.for_indices(range(20000), 1, "data", dtype=F64)).flatten(1).double()
    Sigma = fast.cov_matrix()
    assert (x.mean(0) - fast.mean_vector()).norm() / Sigma.trace().sqrt() < 0.03
    assert torch.linalg.matrix_norm(torch.cov(x.T) - Sigma) / torch.linalg.matrix_norm(Sigma) < 0.05


def test_gaussian_prior_keeps_its_family_and_structure():
    prior = GaussianPrior(torch.zeros(D, dtype=F64), 0.5, SHAPE)
    post = prior.posterior(torch.eye(2, D, dtype=F64), torch.ones(2, dtype=F64), 0.1)
    assert isinstance(post, GaussianPrior) and post.rank <= 2
    var = torch.full((D,), 0.5, dtype=F64)
    var[:2] = 0.5 * 0.01 / (0.5 + 0.01)
    torch.testing.assert_close(torch.diagonal(post.covs[0]), var)


def test_bad_structured_covariances_are_refused():
    _, w, means = _parts()
    with pytest.raises(ValueError, match="covs must be"):
        GaussianMixturePrior(w, means, torch.ones(K, 3), SHAPE)
    with pytest.raises(ValueError, match=">= 0"):
        GaussianMixturePrior(w, means, -torch.ones(K), SHAPE)
    with pytest.raises(ValueError, match="orthonormal"):
        GaussianMixturePrior.low_rank(w, means, torch.ones(1, D, 2, dtype=F64), torch.ones(K, 2), 0.1, SHAPE)
