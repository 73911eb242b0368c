"""Non-isotropic noise: closed-form denoiser of analytic priors against direct Gaussian conditioning,
Monte Carlo and autograd; the Eq. 9-10 pseudo-observation; the training-map distribution."""
import math

import pytest
import torch

from lit_ip.evaluation.exact import rotated_cov
from lit_ip.priors.analytic import GaussianMixturePrior, GaussianPrior, _gauss_condition
from lit_ip.priors.nonisotropic import (NonIsotropicPath, denoise_map, inpainting_pseudo_observation,
                                        mixture_log_density_map, score_map)
from lit_ip.priors.paths import RectifiedFlowPath, VPPath

SHAPE = (1, 2, 2)
D = 4


def random_covariance(d, seed, var_log10=(-2.8, -1.4)):
    """A rotated non-isotropic covariance (variances 10^lo..10^hi) of the shared exact harness."""
    return rotated_cov(torch.Generator().manual_seed(seed), d, *var_log10)


def mixture(seed=0):
    g = torch.Generator().manual_seed(seed)
    means = 0.5 + 0.3 * torch.randn(2, D, generator=g, dtype=torch.float64)
    covs = torch.stack([random_covariance(D, seed + 1), random_covariance(D, seed + 2, (-3.4, -2.0))])
    return GaussianMixturePrior(torch.tensor([0.3, 0.7]), means, covs, SHAPE)


def levels(B, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (0.02 + 0.3 * torch.rand(B, *SHAPE, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("path", [VPPath(), RectifiedFlowPath()])
def test_uniform_map_is_the_isotropic_denoiser(path):
    prior = mixture()
    prior.path = path
    x = 0.5 + torch.randn(3, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for t in (torch.tensor(0.1 * path.t_max), torch.tensor(0.6 * path.t_max)):
        a, b = prior.coefficients(t, x)
        got = denoise_map(prior, x / a, (b / a).expand_as(x))
        assert torch.allclose(got, prior.denoise(x, t), atol=1e-9)


def test_gaussian_matches_direct_conditioning():
    """u = x0 + S^(1/2) n is the linear problem y = S^(-1/2) x0 + n: condition N(m, C) on it densely."""
    prior = GaussianPrior(torch.full((D,), 0.4, dtype=torch.float64), random_covariance(D, 5), SHAPE)
    sig = levels(3)
    u = 0.5 + 0.2 * torch.randn(3, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    got = denoise_map(prior, u, sig)
    for i in range(3):
        A = torch.diag(1 / sig[i].flatten())
        mean, _, _ = _gauss_condition(prior.means[:1], prior.covs[0], A, (u[i].flatten() / sig[i].flatten())[None], 1.0)
        assert torch.allclose(got[i].flatten(), mean[0], atol=1e-10)


def test_noiseless_pixels_are_returned_exactly():
    prior = GaussianPrior(torch.full((D,), 0.4, dtype=torch.float64), random_covariance(D, 5), SHAPE)
    sig = levels(2)
    sig[:, 0, 0, 0] = 0.0
    u = torch.rand(2, *SHAPE, dtype=torch.float64)
    got = denoise_map(prior, u, sig)
    assert torch.allclose(got[:, 0, 0, 0], u[:, 0, 0, 0], atol=1e-8)


def test_mixture_matches_monte_carlo():
    """Self-normalised importance sampling with exact prior draws: E[x0|u] = E_p[x0 N(u; x0, S)] / E_p[N]."""
    prior = mixture()
    n = 400_000
    k = (torch.rand(n, generator=torch.Generator().manual_seed(7)) > 0.3).long()
    z = torch.randn(n, D, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    x0 = prior.means[k] + torch.einsum("nde,ne->nd", prior.Q[k], prior.lam[k].sqrt() * z)
    sig = levels(4, seed=4) + 0.1
    u = 0.5 + 0.15 * torch.randn(4, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    got = denoise_map(prior, u, sig)
    for i in range(4):
        s2 = sig[i].flatten() ** 2
        logw = -0.5 * (((u[i].flatten() - x0) ** 2) / s2).sum(1)
        w = torch.softmax(logw, 0)
        mc = (w[:, None] * x0).sum(0)
        spread = (w[:, None] * (x0 - mc) ** 2).sum(0).sqrt()
        ess = 1 / (w ** 2).sum()
        assert ess > 2000
        assert ((got[i].flatten() - mc).abs() <= 5 * spread / ess.sqrt()).all(), (got[i].flatten(), mc)


def test_score_is_the_gradient_of_the_log_density():
    prior = mixture(3)
    sig = levels(3, seed=5)
    u = (0.5 + 0.2 * torch.randn(3, *SHAPE, dtype=torch.float64)).requires_grad_(True)
    grad = torch.autograd.grad(mixture_log_density_map(prior, u, sig).sum(), u)[0]
    assert torch.allclose(score_map(prior, u.detach(), sig), grad, rtol=1e-7, atol=1e-7)
    with pytest.raises(ValueError, match="sigma > 0"):
        score_map(prior, u.detach(), sig * 0)


@pytest.mark.parametrize("sigma_y", [0.05, 0.0])
def test_pseudo_observation_gives_the_inpainting_posterior_mean(sigma_y):
    """Eqs. 9-10: E[x0 | u, y] by conditioning on both observations densely == D(m, s)."""
    prior = GaussianPrior(torch.full((D,), 0.4, dtype=torch.float64), random_covariance(D, 6), SHAPE)
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64).view(1, *SHAPE)
    sigma = 0.3
    g = torch.Generator().manual_seed(4)
    u = 0.5 + 0.3 * torch.randn(1, *SHAPE, generator=g, dtype=torch.float64)
    y = mask * (0.5 + 0.1 * torch.randn(1, *SHAPE, generator=g, dtype=torch.float64))
    m, s = inpainting_pseudo_observation(u, y, mask, torch.tensor(sigma), sigma_y)
    got = denoise_map(prior, m, s)
    obs = mask.flatten().bool()
    # stack: u = x0 + sigma n (all pixels), y_obs = x0_obs + sigma_y n'; whiten each block
    eye = torch.eye(D, dtype=torch.float64)
    if sigma_y > 0:
        A = torch.cat([eye / sigma, eye[obs] / sigma_y])
        z = torch.cat([u.flatten() / sigma, y.flatten()[obs] / sigma_y])
        mean, _, _ = _gauss_condition(prior.means[:1], prior.covs[0], A, z[None], 1.0)
        ref = mean[0]
    else:   # observed pixels are known: condition on them, then on the noisy u of the rest
        ref = u.flatten().clone()
        ref[obs] = y.flatten()[obs]
        C, mu = prior.covs[0], prior.means[0]
        Coo = C[obs][:, obs]
        mu_c = mu[~obs] + C[~obs][:, obs] @ torch.linalg.solve(Coo, y.flatten()[obs] - mu[obs])
        C_c = C[~obs][:, ~obs] - C[~obs][:, obs] @ torch.linalg.solve(Coo, C[obs][:, ~obs])
        mean, _, _ = _gauss_condition(mu_c[None], C_c, torch.eye(2, dtype=torch.float64) / sigma, (u.flatten()[~obs] / sigma)[None], 1.0)
        ref[~obs] = mean[0]
    assert torch.allclose(got.flatten(), ref, atol=1e-8)


def test_refuses_priors_without_a_non_isotropic_denoiser():
    from lit_ip.priors.analytic import EmpiricalPrior

    prior = EmpiricalPrior(torch.rand(5, *SHAPE))
    with pytest.raises(ValueError, match="no non-isotropic denoiser"):
        denoise_map(prior, torch.rand(1, *SHAPE), torch.ones(1, *SHAPE))


def test_training_maps():
    path = NonIsotropicPath(iso_fraction=0.3)
    maps = path.sample_maps(400, (1, 8, 8), torch.Generator().manual_seed(0))
    assert maps.shape == (400, 1, 8, 8)
    assert float(maps.min()) >= path.sigma_min and float(maps.max()) <= path.sigma_max
    flat = maps.flatten(1)
    uniform = (flat.max(1).values - flat.min(1).values) < 1e-12
    assert 0.2 < float(uniform.double().mean()) < 0.4
    # non-uniform maps: two levels, the lower one s = sigma sigma_y / sqrt(sigma^2 + sigma_y^2) < sigma_y_max
    hi, lo = flat.max(1).values, flat.min(1).values
    two = ~uniform & (hi > 1e-2)
    assert bool((lo[two] < hi[two]).all()) and bool((lo[two] <= path.sigma_y_range[1] + 1e-12).all())
    again = path.sample_maps(400, (1, 8, 8), torch.Generator().manual_seed(0))
    assert torch.equal(maps, again)
    assert NonIsotropicPath.from_config(path.config()).config() == path.config()
    with pytest.raises(ValueError, match="sigma_min"):
        NonIsotropicPath(sigma_min=0.0)
