"""ExactInpainting (Eqs. 9-10 with a non-isotropic denoiser) against the exact posterior of Gaussian and
Gaussian-mixture priors, and the same samples through a network-prior wrapper of the exact denoiser."""
import pytest
import torch
from test_noniso_training import OracleNoniso

from lit_ip.evaluation.exact import (draw_exact, draws, gaussian_errors, gaussian_problem, gaussian_tolerances,
                                     mixture_problem, mode_error, posterior_as_prior)
from lit_ip.methods import DPSw, ExactInpainting, Unconditional
from lit_ip.operators.noise import GaussianNoise
from lit_ip.priors.nonisotropic import NonIsotropicPath
from lit_ip.priors.nonisotropic_network import NonIsotropicNetworkPrior
from lit_ip.rng import BatchRNG

N, STEPS = 2000, 200


def run(method, problem, n=N, seed=0):
    return draws(method, problem, n, seed)


@pytest.mark.parametrize("path", ["vp", "rf"])
@pytest.mark.parametrize("kind,operator,sigma", [("gaussian", "inpainting", 0.05), ("gaussian", "inpainting", 1e-3),
                                                 ("gaussian", "dense", 0.05), ("mixture", "inpainting", 0.05)])
def test_samples_are_those_of_the_exact_posterior_prior(kind, path, operator, sigma):
    """E[x0 | x_t, y] of the prior = E[x0 | x_t] of the exact posterior, so with the same noise the
    method's samples are those of the unconditional sampler run on the exact posterior (computed by
    another route: Gaussian conditioning, then the isotropic denoiser)."""
    make = gaussian_problem if kind == "gaussian" else mixture_problem
    problem = make(path, sigma=sigma, operator=operator)
    got = run(ExactInpainting(num_steps=30), problem, n=64)
    ref = Unconditional(num_steps=30).sample(posterior_as_prior(problem), problem.operator, problem.batch(64),
                                             BatchRNG(64, 0))
    assert torch.allclose(got, ref, atol=1e-6), float((got - ref).abs().max())


def test_gaussian_posterior_moments_are_matched():
    """Whitened moment errors within the 5-sigma tolerances of exact draws (``gaussian_tolerances``);
    measured 0.10 / 0.43 (exact draws 0.07 / 0.37; tolerances 0.149 / 0.467), Unconditional 14.6 / 55.5."""
    problem = gaussian_problem("rf", sigma=0.05, operator="inpainting")
    tol = gaussian_tolerances(N, problem.dim)
    got = gaussian_errors(run(ExactInpainting(num_steps=STEPS), problem), problem.posterior)
    assert got["mean"] < tol["mean"] and got["cov"] < tol["cov"], (got, tol)
    uncond = gaussian_errors(run(Unconditional(num_steps=STEPS), problem), problem.posterior)
    assert uncond["mean"] > 10 * tol["mean"] and uncond["cov"] > 10 * tol["cov"], uncond   # the test can fail


def test_noiseless_inpainting_keeps_the_observed_pixels():
    problem = gaussian_problem("vp", sigma=1e-3, operator="inpainting")
    x = ExactInpainting(num_steps=20).sample(problem.prior, problem.operator, problem.batch(8), BatchRNG(8, 1),
                                             GaussianNoise(0.0))
    mask = problem.operator.mask
    assert torch.allclose(mask * x, (mask * problem.y).expand_as(x), atol=1e-6)


def test_mixture_posterior_weights_are_matched():
    """Three posterior modes of weights .25 / .35 / .4 (the prior's are .5 / .3 / .2): mode error
    (total variation to the reference exact draws) measured 0.021 (exact draws 0.011, Unconditional
    0.25); whitened mean error 0.083 (tolerance 0.149)."""
    problem = mixture_problem("vp", "range", sigma=0.05, operator="inpainting", target_weights=(0.25, 0.35, 0.4))
    assert torch.allclose(problem.posterior.weights, torch.tensor([0.25, 0.35, 0.4], dtype=torch.float64), atol=0.02)
    x = run(ExactInpainting(num_steps=100), problem)
    assert mode_error(x, problem) < 0.05, mode_error(x, problem)
    assert mode_error(draw_exact(problem, N, seed=5), problem) < 0.05          # the bound holds for exact draws
    assert gaussian_errors(x, problem.posterior)["mean"] < gaussian_tolerances(N, problem.dim)["mean"]
    assert mode_error(run(Unconditional(num_steps=100), problem), problem) > 0.15       # the test can fail


def test_posterior_mean_agrees_with_dpsw_exact():
    """Two derivations of E[x0 | x_t, y]: D(m, s) here, the information form of DPSw(mode='exact')."""
    for operator in ("inpainting", "dense"):
        problem = mixture_problem("vp", operator=operator, sigma=0.05)
        y = problem.batch(3)
        mine, theirs = ExactInpainting(num_steps=4), DPSw(num_steps=4, mode="exact")
        p1 = mine.setup(problem.prior, problem.operator, y, GaussianNoise(0.05))
        p1.state.update(mine.prepare(p1))
        p2 = theirs.setup(problem.prior, problem.operator, y, GaussianNoise(0.05))
        p2.state.update(theirs.prepare(p2))
        x = 0.5 + 0.3 * torch.randn(3, *problem.prior.image_shape, dtype=torch.float64)
        for t in (100.0, 600.0):
            a, b = problem.prior.coefficients(torch.tensor(t), x)
            s = type("S", (), dict(x=x, a=a, b=b))()
            assert torch.allclose(mine.posterior_mean(x, a, b, p1), theirs.exact_mean(s, p2), atol=1e-8), operator


def test_network_wrapper_of_the_exact_denoiser_gives_the_same_samples():
    problem = gaussian_problem(sigma=0.05, operator="inpainting")
    net = NonIsotropicNetworkPrior(OracleNoniso(problem.prior, NonIsotropicPath()), NonIsotropicPath(),
                                   image_shape=problem.prior.image_shape)
    problem.prior.path = net.path
    rng = lambda: BatchRNG(4, 3)
    a = ExactInpainting(num_steps=20).sample(problem.prior, problem.operator, problem.batch(4), rng(), GaussianNoise(0.05))
    b = ExactInpainting(num_steps=20).sample(net, problem.operator, problem.batch(4), rng(), GaussianNoise(0.05))
    assert torch.allclose(a, b, atol=1e-5)
    net.evaluations.reset()
    ExactInpainting(num_steps=20).sample(net, problem.operator, problem.batch(4), rng(), GaussianNoise(0.05))
    assert net.evaluations.forward == 4 * 20
    dense = gaussian_problem(sigma=0.05, operator="dense")
    with pytest.raises(ValueError, match="per-pixel non-isotropic denoiser"):
        ExactInpainting(num_steps=2).sample(net, dense.operator, dense.batch(1), BatchRNG(1, 3), GaussianNoise(0.05))
