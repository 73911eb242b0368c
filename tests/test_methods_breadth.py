"""The survey-breadth methods (Score-SDE, Score-ALD, SNIPS, ILVR, RePaint, DDNM time travel, MCG,
DDS, MPGD, DSG, Kadkhodaie-Simoncelli, OT-ODE) against exact posteriors, plus their own properties.

Problems: ``lit_ip.methods.exactness.gaussian_problem`` (Gaussian prior with a random non-isotropic
covariance on (1, 4, 4) images; operators: a fixed inpainting mask observing 8 of 16 pixels, the
identity, a dense (8, 16) matrix of spectral norm 1), VP path. Errors ``mean`` / ``cov`` as in
``lit_ip.methods.exactness``; for N = 400 exact draws the floors are about 0.05 and 0.16.
Bounds are set from measured values (in the comments) with margin, and each is checked to reject
unconditional sampling. Sampler-style methods are run on noisy data (sigma_y = 0.05); the
noiseless replacement / projection methods on sigma_y = 1e-3 (their papers' setting).
"""
from __future__ import annotations

import pytest
import torch

from lit_ip.methods import (DDS, DSG, ILVR, MCG, MPGD, OTODE, SNIPS, DDNMPlus, DDNMTimeTravel,
                            KadkhodaieSimoncelli, RePaint, ScoreALD, ScoreSDE, Unconditional)
from lit_ip.methods.exactness import draws, gaussian_problem, moment_errors
from lit_ip.operators.base import LinearOperator
from lit_ip.operators.inpainting import MaskInpainting
from lit_ip.operators.noise import GaussianNoise, PoissonNoise
from lit_ip.priors.paths import VPPath
from lit_ip.rng import SampleRNG

N = 400
_PROBLEMS: dict = {}


def problem(operator: str, sigma: float):
    key = (operator, sigma)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = gaussian_problem(path=VPPath(), operator=operator, sigma=sigma)
    return _PROBLEMS[key]


# (method, operator, sigma_y, bound on mean error, bound on cov error); measured values in comments
CASES = {
    # annealed Langevin with enough steps per level approaches the exact posterior
    # (measured: SNIPS 0.05/0.12, 0.08/0.18, 0.05/0.16; Score-ALD 0.04/0.13, 0.05/0.23, 0.07/0.12)
    "SNIPS-inpainting": (lambda: SNIPS(50, langevin_steps=20, delta=0.2), "inpainting", 0.05, 0.15, 0.3),
    "SNIPS-denoising": (lambda: SNIPS(50, langevin_steps=20, delta=0.2), "denoising", 0.05, 0.15, 0.3),
    "SNIPS-dense": (lambda: SNIPS(50, langevin_steps=20, delta=0.2), "dense", 0.05, 0.15, 0.3),
    "ScoreALD-inpainting": (lambda: ScoreALD(50, langevin_steps=20, delta=0.2), "inpainting", 0.05, 0.15, 0.3),
    "ScoreALD-denoising": (lambda: ScoreALD(50, langevin_steps=20, delta=0.2), "denoising", 0.05, 0.15, 0.35),
    "ScoreALD-dense": (lambda: ScoreALD(50, langevin_steps=20, delta=0.2), "dense", 0.05, 0.15, 0.3),
    # replacement / projection, noiseless inpainting (measured mean ~0.13-0.30, cov ~0.13-0.4)
    "ScoreSDE-inpainting": (lambda: ScoreSDE(100), "inpainting", 1e-3, 0.45, 0.5),
    "ILVR-inpainting": (lambda: ILVR(100), "inpainting", 1e-3, 0.45, 0.5),
    "RePaint-inpainting": (lambda: RePaint(50, jump=5, repeats=3), "inpainting", 1e-3, 0.45, 0.5),
    "DDNMTimeTravel-inpainting": (lambda: DDNMTimeTravel(100), "inpainting", 1e-3, 0.45, 0.5),
    "MCG-inpainting": (lambda: MCG(100), "inpainting", 1e-3, 0.45, 0.5),
    "DDS-inpainting": (lambda: DDS(100), "inpainting", 1e-3, 0.45, 0.5),
    "KadkhodaieSimoncelli-inpainting": (lambda: KadkhodaieSimoncelli(1000, beta=0.1), "inpainting", 1e-3, 0.3, 0.45),
    # projection with A^+ on a dense operator (measured: ILVR 0.45/0.27, K-S 0.14/0.26, MCG 0.20/0.33)
    "ILVR-dense": (lambda: ILVR(100), "dense", 1e-3, 0.6, 0.45),
    "KadkhodaieSimoncelli-dense": (lambda: KadkhodaieSimoncelli(1000, beta=0.1), "dense", 1e-3, 0.3, 0.45),
    # gradient / guidance methods on noisy dense data (measured: MPGD 0.25/0.41, DSG 0.19/0.33,
    # OT-ODE 0.07/0.21, MCG 0.36/0.64 with its noise-copying projection)
    "MPGD-dense": (lambda: MPGD(100), "dense", 0.05, 0.4, 0.55),
    "DSG-dense": (lambda: DSG(100, w=0.1), "dense", 0.05, 0.35, 0.5),
    "OTODE-dense": (lambda: OTODE(100), "dense", 0.05, 0.15, 0.35),
    "OTODE-inpainting": (lambda: OTODE(100), "inpainting", 0.05, 0.35, 0.3),
}


def errors(make, operator, sigma):
    pr = problem(operator, sigma)
    return moment_errors(draws(make(), pr, N), pr.posterior)


@pytest.mark.parametrize("case", sorted(CASES))
def test_against_the_exact_gaussian_posterior(case):
    make, operator, sigma, mean_bound, cov_bound = CASES[case]
    err = errors(make, operator, sigma)
    assert err["mean"] <= mean_bound and err["cov"] <= cov_bound, (case, err)
    wrong = errors(lambda: Unconditional(100), operator, sigma)
    assert wrong["mean"] > mean_bound or wrong["cov"] > cov_bound, (case, "bound passes Unconditional", wrong)


# --- replacement keeps the observed pixels ---------------------------------------------------------
def _mask_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(1, 1, 4, 4, generator=g, dtype=torch.float64) < 0.5).to(torch.float64)
    op = MaskInpainting(mask, (1, 4, 4))
    pr = problem("inpainting", 1e-3)
    x = torch.rand(3, 1, 4, 4, generator=g, dtype=torch.float64)
    return pr.prior, op, mask, op(x), x


@pytest.mark.parametrize("make", [lambda: ScoreSDE(20), lambda: ILVR(20), lambda: RePaint(10, jump=3, repeats=2),
                                  lambda: MCG(20, zeta=0.5), lambda: DDNMTimeTravel(20, jump=3, repeats=2)],
                         ids=["ScoreSDE", "ILVR", "RePaint", "MCG", "DDNMTimeTravel"])
def test_replacement_methods_keep_observed_pixels_exactly_when_noiseless(make):
    prior, op, mask, y, x = _mask_problem()
    out = make().sample(prior, op, y, SampleRNG.for_indices(range(3), dtype=torch.float64), GaussianNoise(0.0))
    assert torch.allclose(out * mask, x * mask, atol=1e-12)
    assert float(((out - x) * (1 - mask)).abs().max()) > 1e-3          # the rest is sampled, not copied


def test_ilvr_makes_a_dense_measurement_exact_and_stops_refining_after_its_range():
    pr = problem("dense", 1e-3)
    y = pr.batch(4)
    rng = lambda: SampleRNG.for_indices(range(4), dtype=torch.float64)
    full = ILVR(20).sample(pr.prior, pr.operator, y, rng(), GaussianNoise(0.0))
    assert float((pr.operator(full) - y).abs().max()) < 1e-8
    half = ILVR(20, cond_fraction=0.5).sample(pr.prior, pr.operator, y, rng(), GaussianNoise(0.0))
    assert float((pr.operator(half) - y).abs().max()) > 1e-3


# --- resampling schedules ------------------------------------------------------------------------------
@pytest.mark.parametrize("num_steps,jump,repeats", [(20, 5, 3), (12, 4, 1), (10, 3, 4)])
def test_repaint_counts_its_resampling_evaluations(num_steps, jump, repeats):
    """Each jump point (every ``jump``-th step above the last) adds ``(repeats - 1) * jump`` evaluations."""
    pr = problem("inpainting", 1e-3)
    method = RePaint(num_steps, jump=jump, repeats=repeats)
    expected = num_steps + (repeats - 1) * jump * len(range(jump, num_steps, jump))
    pr.prior.evaluations.reset()
    method.sample(pr.prior, pr.operator, pr.batch(2), SampleRNG.for_indices(range(2), dtype=torch.float64),
                  GaussianNoise(1e-3))
    assert pr.prior.evaluations.per_sample(2)["nfe"] == expected == method.expected_nfe(pr.prior)["nfe"]


def test_one_pass_of_time_travel_is_the_plain_method():
    """``repeats = 1`` is no travel: RePaint is ILVR and DDNM time travel is DDNM+ (same seeds)."""
    pr = problem("inpainting", 0.05)
    y, noise = pr.batch(4), GaussianNoise(0.05)
    rng = lambda: SampleRNG.for_indices(range(4), dtype=torch.float64)
    def run(m):
        return m.sample(pr.prior, pr.operator, y, rng(), noise)
    assert torch.equal(run(RePaint(20, jump=5, repeats=1)), run(ILVR(20)))
    assert torch.equal(run(DDNMTimeTravel(20, jump=5, repeats=1)), run(DDNMPlus(20)))
    assert not torch.allclose(run(DDNMTimeTravel(20, jump=5, repeats=2)), run(DDNMPlus(20)))


# --- refusals -------------------------------------------------------------------------------------
class NoSVD(LinearOperator):
    def __init__(self, A):
        super().__init__((1, 4, 4))
        self.A = A

    def forward(self, x):
        return x.flatten(1) @ self.A.T

    def adjoint(self, y):
        return (y @ self.A).view(-1, 1, 4, 4)


def test_snips_refuses_operators_without_svd_and_non_gaussian_noise():
    pr = problem("dense", 0.05)
    rng = SampleRNG.for_indices(range(2), dtype=torch.float64)
    with pytest.raises(ValueError, match="SNIPS.*svd.*NoSVD"):
        SNIPS(4).sample(pr.prior, NoSVD(pr.operator.matrix), pr.batch(2), rng, GaussianNoise(0.05))
    with pytest.raises(ValueError, match="SNIPS assumes Gaussian.*PoissonNoise"):
        SNIPS(4).sample(pr.prior, pr.operator, pr.batch(2).abs(), rng, PoissonNoise(100.0))


def test_dsg_refuses_a_deterministic_step():
    with pytest.raises(ValueError, match="eta > 0"):
        DSG(10, eta=0.0)


# --- method-specific identities --------------------------------------------------------------------
def test_dds_with_enough_cg_iterations_is_the_exact_proximal_step():
    pr = problem("dense", 0.05)
    rng = lambda: SampleRNG.for_indices(range(4), dtype=torch.float64)
    def run(m):
        return m.sample(pr.prior, pr.operator, pr.batch(4), rng(), GaussianNoise(0.05))
    exact = run(DDS(10, rho=0.1, cg_iters=None))
    assert torch.allclose(run(DDS(10, rho=0.1, cg_iters=40)), exact, atol=1e-8)
    assert not torch.allclose(run(DDS(10, rho=0.1, cg_iters=1)), exact, atol=1e-3)   # truncation matters


def test_kadkhodaie_simoncelli_levels_follow_the_step_contraction():
    m = KadkhodaieSimoncelli(10_000, h0=0.01, beta=0.5, sigma0=1.0, sigma_min=0.01)
    plan = m.plan()
    for (s0, h), (s1, _) in zip(plan, plan[1:]):
        assert abs(s1 - s0 * (1 - 0.5 * h)) < 1e-12
    last_sigma, last_h = plan[-1]
    assert last_sigma >= 0.01 > last_sigma * (1 - 0.5 * last_h)                     # stops below sigma_min
    assert len(KadkhodaieSimoncelli(50, h0=0.01, beta=0.05).plan()) == 50            # num_steps caps it


def test_otode_starts_from_the_noised_pseudo_inverse():
    pr = problem("inpainting", 0.05)
    m = OTODE(10, t_start=0.5)
    (t0, _), *_ = m.pairs(pr.prior)
    p = m.setup(pr.prior, pr.operator, pr.batch(2000), GaussianNoise(0.05))
    x = m.initial_state(p, t0, SampleRNG.for_indices(range(2000), dtype=torch.float64))
    a, b = pr.prior.coefficients(t0, x)
    assert 0.3 < float(t0) / float(pr.prior.path.t_max) < 0.7
    mean_err = (x.mean(0) - a * pr.operator.pinv(pr.y)[0]).abs().max()
    assert float(mean_err) < 5 * float(b) / 2000 ** 0.5 and abs(float(x.std(0).mean() / b) - 1) < 0.05


def test_truncated_pseudo_inverse_of_ilvr_and_mcg():
    """``svd_cutoff`` below the smallest singular value is the exact ``A^+``; above some, those
    directions are left to the prior; without an SVD it is refused."""
    pr = problem("dense", 1e-3)
    y, noise = pr.batch(4), GaussianNoise(0.0)
    rng = lambda: SampleRNG.for_indices(range(4), dtype=torch.float64)
    def run(m, op=pr.operator):
        return m.sample(pr.prior, op, y, rng(), noise)
    s = pr.operator.singular_values()
    assert torch.allclose(run(ILVR(10, svd_cutoff=float(s.min()) / 2)), run(ILVR(10)), atol=1e-10)
    cut = run(ILVR(10, svd_cutoff=float(s.median())))
    assert float((pr.operator(cut) - y).abs().max()) > 1e-3
    for m in (ILVR(10, svd_cutoff=0.1), MCG(10, svd_cutoff=0.1), RePaint(10, jump=3, svd_cutoff=0.1),
              KadkhodaieSimoncelli(10, svd_cutoff=0.1), OTODE(10, svd_cutoff=0.1)):
        with pytest.raises(ValueError, match=f"{m.name} with svd_cutoff.*NoSVD"):
            run(m, NoSVD(pr.operator.matrix))


def test_shipped_method_configs_build_their_method():
    """Every ``configs/method/NAME.yaml`` has the layout ``model.init_args.methods.NAME`` and builds."""
    from pathlib import Path

    import yaml
    from jsonargparse import ArgumentParser

    from lit_ip.methods.base import Method
    from lit_ip.methods.registry import METHODS
    files = sorted((Path(__file__).resolve().parents[1] / "configs" / "method").glob("*.yaml"))
    assert len(files) >= 12
    parser = ArgumentParser()
    parser.add_argument("--method", type=Method)
    for f in files:
        methods = yaml.safe_load(f.read_text())["model"]["init_args"]["methods"]
        assert list(methods) == [f.stem], f
        method = parser.instantiate(parser.parse_object({"method": methods[f.stem]})).method
        assert type(method) is METHODS[f.stem].cls, f
