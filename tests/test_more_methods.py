"""DiffPIR, RED-diff, DAPS, DPS-w, DMPlug and TDS (SMC) against exact posteriors.

Problems, metrics and method settings are the shared ones (``lit_ip.evaluation.exact``,
``lit_ip.evaluation.exact_cases``; the same runs fill ``benchmarks/exact_posterior_table.md``):
a Gaussian prior on (1, 4, 4) images, a random 8x16 operator, sigma_y = 0.1, and a
three-Gaussian mixture separated in the range of A. Errors are whitened (``mean``, ``cov``,
``sw``) with closed-form values for exact draws, mixture ``modes`` in total variation, and
``dist`` / ``spread`` / ``res`` for point estimates. The bounds below come from what each method
is known to achieve and from the table's rows (with a margin of about 1.3x);
``test_bounds_fail_for_wrong_methods`` checks every bound rejects a wrong method.
"""
import dataclasses

import pytest
import torch

from lit_ip.evaluation import exact as E
from lit_ip.evaluation import exact_cases as C
from lit_ip.methods.base import Method, Unconditional
from lit_ip.methods.daps import DAPS
from lit_ip.methods.diffpir import DiffPIR
from lit_ip.methods.dmplug import DMPlug, _Selector
from lit_ip.methods.dpsw import DPSw, denoising_posterior_mean, mixture_posterior_mean
from lit_ip.methods.reddiff import REDDiff
from lit_ip.methods.smc import TDS, systematic_resample
from lit_ip.operators.base import LinearOperator
from lit_ip.operators.noise import GaussianNoise
from lit_ip.priors.base import Prior
from lit_ip.rng import BatchRNG, SampleRNG

problem, draws, run = C.problem, E.draws, C.run
SIGMA = 0.1
N_POINT = 64                  # draws of the point estimates in the tests


class PosteriorMean(Method):
    """A wrong 'sampler' for the mode test: always the exact posterior mean (collapses the modes)."""

    def __init__(self, posterior):
        super().__init__(1)
        self.posterior = posterior

    def sample(self, prior, operator, y, rng, noise=None):
        return self.posterior.mean_vector().expand(y.shape[0], -1).reshape(y.shape[0], *prior.image_shape).clone()


class ExactDraws(Method):
    """A wrong 'point estimate' for the point-estimate bounds: exact posterior samples."""

    def __init__(self, posterior):
        super().__init__(1)
        self.posterior = posterior

    def sample(self, prior, operator, y, rng, noise=None):
        return self.posterior.sample(y.shape[0], rng).to(y)


# --- bounds ------------------------------------------------------------------------------------
# Samplers (VP, settings of exact_cases.SETTINGS): whitened mean / cov errors and sliced W2.
# Exact draws give 0.09 / 0.37 / 0.06 at N = 2000 and 0.13 / 0.52 / 0.08 at N = 1000.
SAMPLER_BOUNDS = {
    # The DDPM grid of 100 uniform steps alone leaves a covariance error even with the exact
    # posterior score (table: grid-floor rows); DPS-w exact reproduces that floor (equality test below).
    # measured 0.095 / 0.948 / 0.127 (N = 2000; grid floor row 0.090 / 0.95 / 0.13)
    "DPSw-exact": dict(mean=0.15, cov=1.25, sw=0.17),
    # TDS targets p_theta(x0) p(y | x0), p_theta the 100-step sampler's model: the same floor
    # (4 particles, PiGDM twist).
    # measured 0.167 / 0.911 / 0.136 (N = 1000).
    "TDS": dict(mean=0.22, cov=1.2, sw=0.18),
    # DiffPIR's proximal step assumes p(x0 | x_t) = N(x0_hat, sigma_bar_t^2 / lambda I): an approximation.
    # lambda = 1, zeta = 0.3: measured 0.798 / 0.861 / 0.224.
    "DiffPIR": dict(mean=1.05, cov=1.15, sw=0.3),
    # DAPS's Gaussian p(x0 | x_t) with r_t = sigma_t over-disperses.
    # lr 2e-3, 50 Langevin steps per level: measured 0.562 / 0.833 / 0.173 (N = 1000).
    "DAPS": dict(mean=0.75, cov=1.1, sw=0.23),
    # DPS-w transfers a step size fitted on a reference denoising task: heuristic. Its reference
    # task needs a mask or A A^T = c I: it runs on the inpainting problem (8 of 16 pixels).
    # measured 0.363 / 0.920 / 0.144.
    "DPSw": dict(mean=0.5, cov=1.2, sw=0.19),
}
# Point estimates (N_POINT draws): distance to the posterior mean (~1 for posterior draws),
# spread across seeds (~1 for samplers), RMS residual (sigma_y = 0.1 for the truth).
POINT_BOUNDS = {
    # RED-diff is a MAP-like point estimate: the 1/sqrt(SNR) weighting makes the last
    # iterations pure data fitting (residual far below sigma_y): measured dist 0.74, spread 0.11,
    # residual 0.0005.
    "REDDiff": dict(dist=0.95, spread=0.25, res=SIGMA),
    # DMPlug fits y through the 3-step generator; the part of z the fit does not see stays random:
    # measured dist 0.66, spread 0.19, residual 0.063.
    "DMPlug": dict(dist=0.85, spread=0.3, res=SIGMA),
}


def sampler_errors(name, path="vp", n=None):
    return C.errors(name, "gaussian", path, n)


def point_errors(name, path="vp"):
    return C.errors(name, "gaussian", path, N_POINT)


def within(errors, bounds):
    return all(errors[k] <= v for k, v in bounds.items())


@pytest.mark.parametrize("name", sorted(SAMPLER_BOUNDS))
def test_sampler_moments_against_exact_gaussian_posterior(name):
    err = sampler_errors(name)
    assert within(err, SAMPLER_BOUNDS[name]), (name, err)


@pytest.mark.parametrize("name", sorted(POINT_BOUNDS))
def test_point_estimates_are_near_the_posterior_mean_and_fit_the_data(name):
    err = point_errors(name)
    assert within(err, POINT_BOUNDS[name]), (name, err)


def test_bounds_fail_for_wrong_methods():
    pr = problem()
    for name, bounds in SAMPLER_BOUNDS.items():     # Unconditional on the method's own problem
        wrong = C.errors("Unconditional", "gaussian", "vp", C.num_draws(name), operator=C.operator_kind(name))
        assert not within(wrong, bounds), f"Unconditional passes the bound of {name}: {wrong}"
    wrong_points = [point_errors("Unconditional"), E.all_errors(draws(ExactDraws(pr.posterior), pr, N_POINT), pr)]
    for name, bounds in POINT_BOUNDS.items():
        for w in wrong_points:
            assert not within(w, bounds), f"a wrong method passes the bound of {name}: {w}"


# --- DPS-w's exact posterior denoiser ------------------------------------------------------------
def test_exact_denoising_posterior_mean_is_gaussian_conditioning():
    """Prop. 4.1 through the prior's own denoiser equals conditioning on x_t and y together."""
    pr = problem("mixture")
    prior, g = pr.prior, torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 4, 4, generator=g, dtype=torch.float64)
    y = torch.rand(4, 1, 4, 4, generator=g, dtype=torch.float64)
    eye = torch.eye(16, dtype=torch.float64)
    for t in (5.0, 100.0, 500.0, 990.0):
        a, b = prior.coefficients(torch.tensor(t), x)
        got = denoising_posterior_mean(prior, x, a, b, y, 0.1)
        P = ((a / b) ** 2 + 1 / 0.1 ** 2) * eye.expand(4, 16, 16)
        ref = mixture_posterior_mean(prior, P, a * x.flatten(1) / b ** 2 + y.flatten(1) / 0.1 ** 2)
        assert torch.allclose(got.flatten(1), ref, atol=1e-10)
        assert not torch.allclose(got, prior.denoise(x, t), atol=1e-3)   # y matters
    A = pr.operator.matrix                                           # P = A^T A / sigma^2: the posterior
    m = mixture_posterior_mean(prior, (A.T @ A / pr.sigma ** 2)[None], (A.T @ pr.y[0] / pr.sigma ** 2)[None])
    assert torch.allclose(m[0], pr.posterior.mean_vector(), atol=1e-10)


@pytest.mark.parametrize("operator", ["identity", "dense"])
def test_dpsw_exact_is_the_sampler_run_on_the_exact_posterior(operator):
    """With the exact posterior denoiser the loop follows the same trajectories as the
    unconditional sampler run on the exact posterior as prior (same seeds)."""
    pr = problem("mixture", operator=operator)
    post_prior = pr.with_prior(E.posterior_as_prior(pr))
    x = draws(DPSw(50, mode="exact"), pr, 16)
    ref = draws(Unconditional(50), post_prior, 16)
    # they differ by rounding only (measured 2e-6 for the identity, 6e-8 for the dense operator)
    assert float((x - ref).abs().max()) < 1e-5
    if operator == "identity":          # the dps-w rule (it refuses the dense operator) is not exact
        assert float((draws(DPSw(50), pr, 16) - ref).abs().max()) > 2e-2


# --- mixture posteriors: mode weights ---------------------------------------------------------------
def test_mode_weights_of_exact_samplers():
    """Exact posterior score (DPS-w exact) and TDS with 4 particles re-weight the three modes
    (exact weights ~.15/.36/.49, prior .5/.3/.2); ignoring y does not."""
    pr = problem("mixture")
    assert float(0.5 * (pr.posterior.weights - pr.prior.weights).abs().sum()) > 0.3
    # measured: DPS-w exact 0.011 (N = 2000, Monte Carlo floor ~0.01); TDS (4 particles) 0.085
    # (N = 1000; more particles do not help here, see test_smc_approaches_the_posterior_as_particles_grow)
    bounds = {"DPSw-exact": 0.04, "TDS": 0.12}
    for name, bound in bounds.items():
        err = E.mode_error(run(name, "mixture"), pr)
        assert err < bound, (name, err)
    assert E.mode_error(run("Unconditional", "mixture", n=C.num_draws("TDS")), pr) > max(bounds.values())


def test_smc_approaches_the_posterior_as_particles_grow():
    """TDS with one particle is twisted guidance alone, biased towards the prior's weights; 16
    particles correct it. The paper's twist p(y | x0_hat), rectified flow, 200 steps (so that the
    sampler's own model p_theta is close to the prior), N = 500: measured mode errors K=1 0.145,
    K=16 0.059 (N = 1000: 0.128 / 0.063; Monte Carlo std ~0.02).

    Not tested because it does not hold here: with the PiGDM twist one particle is already
    close (0.031) and 4 or 16 particles are worse (0.11; VP 100 steps: 0.023 -> 0.085 / 0.082),
    i.e. the weights move mass away from component 0 (exact 0.15, K=16: 0.08).

    Run with ``max_shift=None`` (the paper's unbounded twisted proposal; K=16 measured 0.067 after
    the particle refactor): TDS's default trust region ``max_shift=1`` does not show the
    improvement here (measured K=1 0.117, K=16 0.132), ``max_shift=4`` does (0.145 -> 0.063) but
    then fails the 2-D Cardoso mixtures of tests/test_particle_methods.py (mode TV 0.24-0.52)."""
    pr = problem("mixture", "rf")
    err = {k: E.mode_error(draws(TDS(200, num_particles=k, twist="tweedie", max_shift=None), pr, 500), pr)
           for k in (1, 16)}
    assert err[16] < 0.1 < err[1], err


@pytest.mark.parametrize("name", ["DiffPIR", "DAPS", "DPSw"])
def test_approximate_samplers_keep_every_mode(name):
    """DiffPIR, DAPS and DPS-w do not reproduce the posterior weights but do not collapse onto one
    mode either; a point estimate does."""
    pr = problem("mixture", operator=C.operator_kind(name))
    live = pr.posterior.weights > 0.05                 # DPS-w's inpainting problem has one dead mode
    w = E.mode_fractions(run(name, "mixture"), pr.posterior)
    assert float(w[live].min()) > 0.15, (name, w)      # measured 0.29 / 0.30 / 0.36 (DPS-w: 2 live modes)
    assert float(E.mode_fractions(draws(PosteriorMean(pr.posterior), pr, 8), pr.posterior)[live].min()) == 0


# --- rectified flow ------------------------------------------------------------------------------
#: rf, 400 draws (exact draws: mean 0.2, cov 0.8): measured values with a margin
RF_BOUNDS = {
    "DiffPIR": dict(mean=0.76, cov=1.25, sw=0.26),          # measured 0.582 / 0.943 / 0.194
    "DPSw-exact": dict(mean=0.3, cov=1.2, sw=0.19),         # 0.176 / 0.894 / 0.137
    "DPSw": dict(mean=0.55, cov=1.1, sw=0.2),               # inpainting: 0.391 / 0.828 / 0.147
    "DAPS": dict(mean=1.3, cov=1.6, sw=0.34),               # 0.985 / 1.204 / 0.258
    "TDS": dict(mean=0.3, cov=1.15, sw=0.18),               # 0.228 / 0.867 / 0.136
    "REDDiff": dict(dist=0.95, spread=0.25, res=SIGMA),     # dist 0.73, spread 0.11, res 0.0003
    # a point estimate no nearer the posterior mean than posterior draws: dist 1.05, spread 0.38
    "DMPlug": dict(dist=1.35, spread=0.5, res=SIGMA),       # res 0.020
}


@pytest.mark.parametrize("name", sorted(RF_BOUNDS))
def test_methods_run_on_rectified_flow_priors(name):
    if name in POINT_BOUNDS:
        err = point_errors(name, "rf")
    else:
        err = sampler_errors(name, "rf", n=400)
    assert within(err, RF_BOUNDS[name]), (name, err)
    wrong = C.errors("Unconditional", "gaussian", "rf", N_POINT if name in POINT_BOUNDS else 400,
                     operator=C.operator_kind(name))
    assert not within(wrong, RF_BOUNDS[name]), (name, wrong)


# --- method-specific properties and refusals (cross-method ones: tests/test_method_cases.py) ----------
def test_diffpir_conjugate_gradients_match_the_svd():
    pr = problem()
    no_svd = dataclasses.replace(pr, operator=_NoSVD(pr.operator.matrix))
    for lam in (1.0, 7.0):
        assert torch.allclose(draws(DiffPIR(20, lam=lam), no_svd, 8), draws(DiffPIR(20, lam=lam), pr, 8), atol=1e-6)


class _NoSVD(LinearOperator):
    def __init__(self, A):
        super().__init__((1, 4, 4))
        self.A = A

    def forward(self, x):
        return x.flatten(1) @ self.A.T.to(x)

    def adjoint(self, y):
        return (y @ self.A.to(y)).view(-1, 1, 4, 4)


class _WrappedPrior(Prior):
    """A prior that only offers its (exact) isotropic denoiser, like a network."""

    def __init__(self, inner):
        super().__init__(inner.path, inner.image_shape, inner.data_mean, inner.data_var)
        self.inner = inner

    def denoise(self, x_t, t):
        return self.inner.denoise(x_t, t)


def test_dpsw_exact_needs_a_non_isotropic_denoiser_except_for_denoising():
    pr = problem("gaussian", operator="dense")
    wrapped = pr.with_prior(_WrappedPrior(pr.prior))
    with pytest.raises(ValueError, match="non-isotropic denoiser"):
        draws(DPSw(5, mode="exact"), wrapped, 2)
    den = problem("gaussian", operator="identity")      # Prop. 4.1: any prior's denoiser suffices
    w = den.with_prior(_WrappedPrior(den.prior))
    assert torch.allclose(draws(DPSw(5, mode="exact"), w, 2), draws(DPSw(5, mode="exact"), den, 2))


def test_noise_free_data_needs_an_explicit_likelihood_sigma():
    pr = problem()
    rng = SampleRNG.for_indices([0], dtype=torch.float64)
    for method in (REDDiff(3), DAPS(3, langevin_steps=2, tau=None), TDS(3)):
        with pytest.raises(ValueError, match="sigma"):
            method.sample(pr.prior, pr.operator, pr.batch(1), rng, GaussianNoise(0.0))


# --- DMPlug's iterate selection, SMC resampling ------------------------------------------------------
def test_es_wmv_picks_the_least_variable_window_and_stops_after_patience():
    W, P = 3, 4
    g = torch.Generator().manual_seed(1)
    # two samples: noisy iterates that calm down at different times, then become noisy again
    scale = torch.tensor([[3.0, 2, 1, .5, .2, .1, 1, 2, 3, 3, 3, 3, 3, 3],
                          [3.0, 3, 3, 2, 1, .5, .3, .05, 1, 2, 3, 3, 3, 3]]).T
    xs = [scale[e][:, None] * torch.randn(2, 5, generator=g, dtype=torch.float64) for e in range(len(scale))]
    sel = _Selector("es-wmv", window=W, patience=P, truth=None)
    stop = next(e for e, x in enumerate(xs) if sel.push(x, e))
    for i in range(2):                       # reference: windowed variance, first minimum, patience
        var = [torch.stack([x[i] for x in xs[e - W + 1:e + 1]]).var(0, unbiased=False).sum()
               for e in range(W - 1, len(xs))]
        best = W - 1 + int(torch.stack(var).argmin())
        assert int(sel.best_iter[i]) == best and torch.equal(sel.best[i], xs[best][i])
    assert stop == int(sel.best_iter.max()) + P     # stops once every sample waited P iterations


def test_dmplug_oracle_selection_is_labelled_and_never_implicit():
    pr = problem()
    assert DMPlug().select == "es-wmv"
    oracle = DMPlug(2, iterations=5, select="oracle")
    with pytest.raises(ValueError, match="oracle"):
        draws(oracle, pr, 2)
    truth = pr.posterior.mean_vector().view(1, 1, 4, 4).expand(2, 1, 4, 4)
    res = oracle.run(pr.prior, pr.operator, pr.batch(2), SampleRNG.for_indices([0, 1], dtype=torch.float64),
                     GaussianNoise(SIGMA), ground_truth=truth)
    assert res.info["oracle"] is True and oracle.name == "DMPlug[oracle]"
    plain = DMPlug(2, iterations=5)
    res = plain.run(pr.prior, pr.operator, pr.batch(2), SampleRNG.for_indices([0, 1], dtype=torch.float64),
                    GaussianNoise(SIGMA))
    assert res.info["oracle"] is False and plain.name == "DMPlug"


def test_systematic_resampling_stays_within_rows_and_matches_weights():
    g = torch.Generator().manual_seed(0)
    logw = torch.log(torch.rand(3, 8, generator=g, dtype=torch.float64))
    idx = systematic_resample(logw, torch.rand(3, 1, generator=g, dtype=torch.float64))
    w = torch.softmax(logw, 1)
    assert idx.shape == (3, 8) and int(idx.min()) >= 0 and int(idx.max()) < 8
    counts = torch.stack([torch.bincount(r, minlength=8) for r in idx]).double()
    assert bool(((counts - 8 * w).abs() < 1 + 1e-9).all())       # systematic: floor or ceil of K w
