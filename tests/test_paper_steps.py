"""One step of each method, with its paper's hyperparameters, against the paper's update written
out here from the equation -- in the paper's [-1, 1] units where they differ from ours (the
conversion: tests/paper_steps_common.py); the survey-breadth methods are in
tests/test_paper_steps_breadth.py. The references never call a method's code.
"""
from __future__ import annotations

import math

import pytest
import torch

from lit_ip.methods.daps import DAPS
from lit_ip.methods.diffpir import DiffPIR
from lit_ip.methods.dps import DPS
from lit_ip.methods.dpsw import DPSw
from lit_ip.methods.moment_matching import MomentMatching
from lit_ip.methods.pigdm import PiGDM
from lit_ip.methods.reddiff import REDDiff
from lit_ip.methods.smc import TDS
from lit_ip.operators.blur import GaussianBlur
from lit_ip.operators.dense import DenseMatrixOperator
from lit_ip.operators.identity import Identity
from lit_ip.operators.noise import GaussianNoise, PoissonNoise
from lit_ip.operators.resize import AveragePoolSR
from lit_ip.priors.paths import RectifiedFlowPath

from paper_steps_common import (B, D, F64, M, SHAPE, SIGMA, FixedNoise, Spectral, _rng, dense,
                                gaussian_posterior_mean, gaussian_prior, matrix, one_estimate, paper_y,
                                problem, randn, state, stochastic_state, to_paper)


# --- DPS (Chung et al. 2023, Algorithm 1 and 2) ----------------------------------------------------
def test_dps_step_is_algorithm_1_in_paper_units():
    """Alg. 1, line 7: x'_{i-1} -= zeta_i grad_{x'_i} ||y' - A x0'_hat||^2, zeta_i = zeta' / ||y' - A x0'_hat||,
    in [-1, 1] units; our zeta equals the paper's zeta' (the authors' code steps along the plain norm
    with scale = 2 zeta')."""
    prior, op = gaussian_prior(), dense()
    zeta_paper = 1.0
    p, y = problem(DPS(10, zeta=zeta_paper), prior, op, GaussianNoise(SIGMA))
    t = torch.tensor(500.0, dtype=F64)
    x = prior.sample(B, _rng(7)) * 0.6 + 0.3 * randn(B, *SHAPE)
    s = state(prior, x, t, torch.tensor(400.0, dtype=F64))
    shift = DPS(10, zeta=zeta_paper).guidance(s, p)
    # the paper's update, in its units
    A, a = matrix(op), s.a
    xp = to_paper(x, a).detach().requires_grad_(True)
    x0p = to_paper(prior.denoise((xp + a) / 2, t))
    yp = paper_y(y, A)
    r = yp - x0p.flatten(1) @ A.T
    norm = r.norm(dim=1)
    (g,) = torch.autograd.grad((r ** 2).sum(1).sum(), xp)
    shift_paper = -(zeta_paper / norm).view(-1, 1, 1, 1) * g
    torch.testing.assert_close(shift, shift_paper / 2)                   # x = (x' + a) / 2


def test_dps_poisson_step_is_algorithm_2():
    """Alg. 2: the Poisson step uses ||y - A x0_hat||_Lambda, Lambda_jj = 1 / (2 y_j)."""
    prior = gaussian_prior()
    op = DenseMatrixOperator(dense().matrix.abs(), SHAPE)              # A x >= 0 for Poisson counts
    p, y = problem(DPS(10, zeta=0.3), prior, op, PoissonNoise(50.0))
    x = prior.sample(B, _rng(8)) * 0.6 + 0.3 * randn(B, *SHAPE)
    t = torch.tensor(300.0, dtype=F64)
    s = state(prior, x, t, torch.tensor(200.0, dtype=F64))
    shift = DPS(10, zeta=0.3).guidance(s, p)
    A = matrix(op)
    xr = x.detach().requires_grad_(True)
    r = y.flatten(1) - prior.denoise(xr, t).flatten(1) @ A.T
    lam = 1 / (2 * y.flatten(1).clamp_min(1e-3))
    (g,) = torch.autograd.grad(((lam * r ** 2).sum(1)).sqrt().sum(), xr)
    torch.testing.assert_close(shift, -0.3 * g)


# --- PiGDM (Song et al. 2023, Eqs. 7 and 10) ---------------------------------------------------------
def pigdm_reference(prior, op, y, x, t, t_next, sigma):
    """Eq. 10 for the paper's VE state u = x / a (DDIM eta = 0): u_s = f(u_t) + r_t^2 grad_u log p(y | u_t),
    Eq. 7's Gaussian with r_t^2 = v s^2 / (v + s^2), s = b / a; then x_s = a_s u_s. In [-1, 1] units."""
    A = matrix(op)
    a, b = prior.coefficients(t, x)
    a_n, b_n = prior.coefficients(t_next, x)
    s_t, s_n = 2 * b / a, 2 * b_n / a_n                                 # VE levels, [-1, 1] units
    v = 4 * prior.data_var                                              # data variance, [-1, 1] units
    r2 = v * s_t ** 2 / (v + s_t ** 2)
    yp, sp = paper_y(y, A), 2 * sigma
    u = to_paper(x / a).detach().requires_grad_(True)                   # u' = x'_t / a
    x0 = to_paper(prior.denoise(a * (u + 1) / 2, t))
    res = yp - x0.flatten(1) @ A.T
    C = r2 * A @ A.T + sp ** 2 * torch.eye(M, dtype=F64)
    logp = -0.5 * (res * torch.linalg.solve(C, res.T).T).sum()         # the covariance held fixed
    (grad,) = torch.autograd.grad(logp, u)
    u_next = x0 + s_n / s_t * (u - x0) + r2 * grad
    return a_n * (u_next.detach() + 1) / 2                              # back to [0, 1] units, x = a u


def test_pigdm_step_is_eq_10_converted_to_vp():
    prior, op = gaussian_prior(), dense()
    method = PiGDM(10, eta=0.0)
    p, y = problem(method, prior, op, GaussianNoise(SIGMA))
    p.state.update(method.prepare(p))
    t, t_n = torch.tensor(600.0, dtype=F64), torch.tensor(500.0, dtype=F64)
    x = prior.sample(B, _rng(9)) * 0.5 + 0.4 * randn(B, *SHAPE)
    s = state(prior, x, t, t_n)
    with torch.enable_grad():
        shift = method.guidance(s, p)
    out = method.step(x, method.estimate(s, p).detach(), s, p, None) + shift
    torch.testing.assert_close(out, pigdm_reference(prior, op, y, x, t, t_n, SIGMA))


def test_pigdm_on_a_flow_is_step_length_aware():
    """On rectified flow the guided move vanishes with the step (posterior-score form): the
    difference to the unguided step shrinks linearly in the step length."""
    prior, op = gaussian_prior(path=RectifiedFlowPath().scaled(0.5)), dense()
    method = PiGDM(10, eta=0.0)
    p, y = problem(method, prior, op, GaussianNoise(SIGMA))
    p.state.update(method.prepare(p))
    x = 0.5 + 0.5 * randn(B, *SHAPE)
    t = torch.tensor(0.6, dtype=F64)
    moves = []
    for h in (0.1, 0.01):
        s = state(prior, x, t, t - h)
        with torch.enable_grad():
            x0_c = method.estimate(s, p)
        assert method.guidance(s, p) is None
        moves.append(float((method.step(x, x0_c.detach(), s, p, None)
                            - method.step(x, s.x0.detach(), s, p, None)).abs().max()))
    assert 8 < moves[0] / moves[1] < 12


# --- DiffPIR (Zhu et al. 2023, Eqs. 13 and 15) -------------------------------------------------------
def test_diffpir_step_is_eqs_13_15_with_the_papers_lambda():
    """rho_t = lambda sigma_n^2 / sigma_bar_t^2, sigma_bar_t = sqrt(1 - abar) / sqrt(abar) of the network
    ([-1, 1] images), sigma_n the noise of [0, 1] images; lambda = 7, zeta = 0.3 (the paper's)."""
    prior, op = gaussian_prior(), dense()
    method = DiffPIR(10, lam=7.0, zeta=0.3)
    p, y = problem(method, prior, op, GaussianNoise(SIGMA))
    t, t_n = torch.tensor(300.0, dtype=F64), torch.tensor(200.0, dtype=F64)
    x = prior.sample(B, _rng(10)) * 0.8 + 0.3 * randn(B, *SHAPE)
    s, c = stochastic_state(method, prior, x, t, t_n)
    a, b, a_n, b_n = s.a, s.b, s.a_next, s.b_next
    z = randn(B, *SHAPE, seed=11)
    out = method.step(x, method.estimate(s, p), s, p, FixedNoise(z))
    # the paper
    abar = float(a) ** 2
    sigma_bar = math.sqrt(1 - abar) / math.sqrt(abar)
    rho = 7.0 * SIGMA ** 2 / sigma_bar ** 2
    A = matrix(op)
    x0 = prior.denoise(x, t).flatten(1)
    x0_c = torch.linalg.solve(A.T @ A + rho * torch.eye(D, dtype=F64), (y.flatten(1) @ A + rho * x0).T).T
    x0_c = x0_c.view_as(x)
    eps = (to_paper(x, a) - a * to_paper(x0_c)) / (2 * b)              # in network units
    xp_next = a_n * to_paper(x0_c) + 2 * b_n * (math.sqrt(0.7) * eps + math.sqrt(0.3) * z)
    torch.testing.assert_close(out, (xp_next + a_n) / 2)


# --- DAPS (Zhang et al. 2024, Algorithm 1) -----------------------------------------------------------
def test_daps_langevin_step_with_the_papers_tau_and_lr():
    """x0' <- x0' + eta' [(x0'_hat - x0') / r_t'^2 - A^T (A x0' - y') / tau^2] + sqrt(2 eta') z, in [-1, 1]
    units with the paper's tau = 0.01 and eta' = 1e-4 (our lr = eta' / 4), r_t' = sigma_t'."""
    prior, op = gaussian_prior(), dense()
    method = DAPS(10, ode_steps=1, langevin_steps=2, lr=1e-4 / 4)
    p, y = problem(method, prior, op, GaussianNoise(SIGMA))
    assert p.fit.sigma == pytest.approx(0.01 / 2)
    x0_hat = prior.sample(B, _rng(12)).to(F64)
    level = 0.3                                                         # sigma_t, [0, 1] units
    z = randn(B, 2, *SHAPE, seed=13)
    out = method.langevin(x0_hat, level ** 2, p.fit, 1e-4 / 4, z)
    A, eta_p, r2_p = matrix(op), 1e-4, (2 * level) ** 2
    yp = paper_y(y, A)
    x0hp = to_paper(x0_hat).flatten(1)
    x0p = x0hp.clone()
    for j in range(2):
        grad = (x0hp - x0p) / r2_p - (x0p @ A.T - yp) @ A / 0.01 ** 2
        x0p = x0p + eta_p * grad + math.sqrt(2 * eta_p) * z[:, j].flatten(1)
    torch.testing.assert_close(out, ((x0p + 1) / 2).view_as(x0_hat))


def test_daps_inner_ode_grid_is_the_papers():
    """The inner ODE from level sigma visits EDM's levels with exponent 7 down to sigma_min = 0.01
    ([-1, 1] units): (s^(1/7) + i / (N - 1) (0.01^(1/7) - s^(1/7)))^7."""
    prior = gaussian_prior(path=RectifiedFlowPath().scaled(0.5))
    method = DAPS(10, ode_steps=5)
    t = torch.tensor(0.7, dtype=F64)
    times = method.ode_times(prior, t)
    levels = [float(2 * b / a) for a, b in (prior.coefficients(u, torch.zeros(1, dtype=F64)) for u in times)]
    s = levels[0]
    ref = [(s ** (1 / 7) + i / 4 * (0.01 ** (1 / 7) - s ** (1 / 7))) ** 7 for i in range(5)]
    assert levels == pytest.approx(ref, rel=1e-6)


# --- RED-diff (Mardani et al. 2023, Eq. 10 / Algorithm 1) -------------------------------------------
@pytest.mark.parametrize("weighting", ["paper", "code"])
def test_reddiff_loss_gradient_is_the_papers(weighting):
    """paper: ||y' - A mu'||^2 / (2 sigma_v^2) + lambda (sigma_t / alpha_t) <sg(eps_hat - eps), mu'>;
    code: mean((y' - A mu')^2) / 2 + lambda (sigma_t / alpha_t) mean(sg(eps_hat - eps) mu'); [-1, 1]
    units, the network's sigma_t / alpha_t; lambda = 0.25. Same gradient in mu as ours."""
    prior, op = gaussian_prior(), dense()
    method = REDDiff(10, lam=0.25, weighting=weighting)
    p, y = problem(method, prior, op, GaussianNoise(SIGMA))
    t = torch.tensor(400.0, dtype=F64)
    mu = (prior.sample(B, _rng(14)) + 0.05 * randn(B, *SHAPE)).requires_grad_(True)
    a, b = prior.coefficients(t, mu)
    eps = randn(B, *SHAPE, seed=15)
    eps_hat = prior.eps(a * mu.detach() + b * eps, t)
    (g,) = torch.autograd.grad(method.loss(p, mu, eps_hat, eps, a, b).sum(), mu)
    A = matrix(op)
    mu2 = mu.detach().requires_grad_(True)
    mup = to_paper(mu2).flatten(1)
    yp = paper_y(y, A)
    res, inner = yp - mup @ A.T, ((eps_hat - eps).flatten(1) * mup).sum(1)
    snr_inv = math.sqrt(1 - float(a) ** 2) / float(a)                  # sigma_t / alpha_t of the network
    if weighting == "paper":
        loss = (res ** 2).sum(1) / (2 * (2 * SIGMA) ** 2) + 0.25 * snr_inv * inner
    else:
        loss = (res ** 2).mean(1) / 2 + 0.25 * snr_inv * inner / D
    (g_ref,) = torch.autograd.grad(loss.sum(), mu2)
    torch.testing.assert_close(g, g_ref)


# --- MomentMatching (Boys et al. 2023; Rozet et al. 2024) ---------------------------------------------
@pytest.mark.parametrize("covariance", ["full", "row_sum"])
def test_moment_matching_estimate_is_the_exact_posterior_mean_on_a_gaussian(covariance):
    """x0_c = E[x0 | x_t, y] for a Gaussian prior (full: any covariance; TMPD's row sum: diagonal)."""
    prior, op = gaussian_prior(diagonal=covariance == "row_sum"), dense()
    x0_c, x, y, a, b = one_estimate(MomentMatching(10, cg_iters=50, covariance=covariance), prior, op, 16)
    A = matrix(op)
    ref = gaussian_posterior_mean(prior, x, a, b, A.T @ A / SIGMA ** 2, y.flatten(1) @ A / SIGMA ** 2)
    torch.testing.assert_close(x0_c.flatten(1), ref)


# --- DPS-w (Bellchambers 2025, Eqs. 11-14) -------------------------------------------------------------
def test_dpsw_weight_is_eq_14_on_a_gaussian_denoising_task():
    prior, op = gaussian_prior(), Identity(SHAPE)
    x0_c, x, y, a, b = one_estimate(DPSw(10), prior, op, 17)
    eye = torch.eye(D, dtype=F64)
    ref = gaussian_posterior_mean(prior, x, a, b, eye / SIGMA ** 2, y.flatten(1) / SIGMA ** 2)
    t = torch.tensor(500.0, dtype=F64)
    xr = x.detach().requires_grad_(True)
    x0 = prior.denoise(xr, t)
    (g,) = torch.autograd.grad(((y - x0) ** 2).sum(), xr)
    g = -g.flatten(1)                                                    # -grad ||y_ref - x0_hat||^2 (Eq. 13)
    s_ref = a * (ref - x0.detach().flatten(1)) / b ** 2                  # Eqs. 11-12
    w = (s_ref * g).sum(1, keepdim=True) / (g ** 2).sum(1, keepdim=True)
    torch.testing.assert_close(x0_c.flatten(1), x0.detach().flatten(1) + b ** 2 / a * w * g)


@pytest.mark.parametrize("make", [dense, lambda: GaussianBlur(sigma=1.0, kernel_size=3, in_shape=SHAPE)])
def test_dpsw_refuses_operators_without_equal_singular_values(make):
    prior, op = gaussian_prior(), make()
    y = op(prior.sample(B, _rng(18)))
    with pytest.raises(ValueError, match="DPSw.*A A\\^T = c I.*" + type(op).__name__):
        DPSw(5).sample(prior, op, y, _rng(19), GaussianNoise(SIGMA))


def test_dpsw_accepts_average_pooling():
    prior = gaussian_prior()
    op = AveragePoolSR(2, SHAPE)
    y = op(prior.sample(B, _rng(20)))
    assert torch.isfinite(DPSw(5).sample(prior, op, y, _rng(21), GaussianNoise(SIGMA))).all()


# --- TDS (Wu et al. 2023) ---------------------------------------------------------------------------
def test_tds_default_twist_is_the_pigdm_gaussian():
    """The default twist is PiGDM's Gaussian (the paper's p(y | x0_hat) diverges on dense operators
    with few particles: see the TDS docstring); the paper's stays available as twist='tweedie'."""
    assert TDS().twist == "pigdm" and TDS(twist="tweedie").twist == "tweedie"


def test_dpsw_reference_is_the_upsampled_measurement_and_the_grey_image():
    """App. B.3.2 / B.3.4: the reference task denoises a copy of x0 in image units, not A^T y
    (for 4x average pooling A^T y is the image / 16; for colorization the luma tinted by w)."""
    from lit_ip.methods.dpsw import reference_measurement
    from lit_ip.operators.colorization import Colorization
    g = torch.rand(2, 1, 8, 8, dtype=F64)
    grey = g.expand(-1, 3, -1, -1)                       # w^T grey = g: a noiseless grey image
    col = Colorization(in_shape=[3, 8, 8])
    ref, s = reference_measurement(col, col(grey.float()).to(F64), 0.1)
    torch.testing.assert_close(ref, grey)
    assert abs(s - 0.1) < 1e-12                          # luma weights sum to 1
    blocks = torch.rand(2, 3, 2, 2, dtype=F64).repeat_interleave(4, 2).repeat_interleave(4, 3)
    sr = AveragePoolSR(4, [3, 8, 8])
    ref, s = reference_measurement(sr, sr(blocks.float()).to(F64), 0.1)
    torch.testing.assert_close(ref, blocks, rtol=1e-6, atol=1e-6)


# --- DDNM (Wang et al. 2023, Eq. 13) and DMPS (Meng & Kabashima, Eq. 19 / Eq. 26) --------------------
def test_ddnm_estimate_is_the_range_null_space_decomposition():
    """x0_c = A^+ y + (I - A^+ A) x0_hat, in the paper's [-1, 1] units (noiseless y)."""
    from lit_ip.methods.ddnm import DDNM
    prior, op = gaussian_prior(), dense()
    method = DDNM(10)
    x0_c, x, y, a, b = one_estimate(method, prior, op, seed=27)
    A = matrix(op)
    P = torch.linalg.pinv(A)
    x0p = to_paper(prior.denoise(x, torch.tensor(500.0, dtype=F64)).flatten(1))
    yp = paper_y(y, A)
    ref = yp @ P.T + x0p @ (torch.eye(D, dtype=F64) - P @ A).T
    torch.testing.assert_close(x0_c, ((ref + 1) / 2).view_as(x))


def test_dmps_estimate_adds_the_papers_pseudo_likelihood_score():
    """s_y = (1 / sqrt(abar)) A^T (sigma_y^2 I + (1 - abar) / abar A A^T)^{-1} (y - A x_t / sqrt(abar))
    (dense, before the SVD), in [-1, 1] units; the substituted posterior score gives
    x0_c = x0_hat + lambda (1 - abar) / sqrt(abar) s_y with the paper's lambda = 1.75."""
    from lit_ip.methods.dmps import DMPS
    prior, op = gaussian_prior(), dense()
    method = DMPS(10, scale=1.75)
    x0_c, x, y, a, b = one_estimate(method, prior, op, seed=28)
    A = matrix(op)
    b_net, syp = 2 * b, 2 * SIGMA
    xp = to_paper(x, a).flatten(1)
    yp = paper_y(y, A)
    K = syp ** 2 * torch.eye(M, dtype=F64) + (b_net / a) ** 2 * A @ A.T
    s_y = torch.linalg.solve(K, (yp - xp @ A.T / a).T).T @ A / a
    x0p = to_paper(prior.denoise(x, torch.tensor(500.0, dtype=F64)).flatten(1))
    ref = x0p + 1.75 * b_net ** 2 / a * s_y
    torch.testing.assert_close(x0_c, ((ref + 1) / 2).view_as(x))


# --- DDRM (Kawar et al. 2022, Eqs. 7-8) ----------------------------------------------------------------
def test_ddrm_step_is_eqs_7_8_in_the_papers_units():
    """Per spectral coordinate (sigma' the next VE level, [-1, 1] units: sigma' and sigma_y doubled,
    x_bar' = 2 x_bar - V^T 1, y_bar' = S^+ U^T (2 y - A 1)), eta = 0.85 and eta_b = 1 (the paper's):
    null space x0 + sqrt(1 - eta^2) sigma' eps + eta sigma' z; sigma' < sigma_y / s: x0 + sqrt(1 -
    eta^2) sigma' (y - x0) / (sigma_y / s) + eta sigma' z; else (1 - eta_b) x0 + eta_b y +
    sqrt(sigma'^2 - eta_b^2 sigma_y^2 / s^2) z."""
    from lit_ip.methods.ddrm import DDRM
    prior, op = gaussian_prior(), dense()
    method = DDRM(10, eta=0.85, eta_b=1.0)
    p, y = problem(method, prior, op, GaussianNoise(SIGMA))
    t, t_n = torch.tensor(60.0, dtype=F64), torch.tensor(30.0, dtype=F64)   # both measured branches occur
    x = prior.sample(B, _rng(29)) * 0.9 + 0.1 * randn(B, *SHAPE)
    s = state(prior, x, t, t_n, grad=False)
    z = randn(B, *SHAPE, seed=30)
    out = method.step(x, s.x0, s, p, FixedNoise(z))
    a, b, a_n, b_n = (float(v) for v in (s.a, s.b, s.a_next, s.b_next))
    A, sp = matrix(op), Spectral(op)
    sv, meas = sp.s, sp.measured
    x0p = to_paper(s.x0).flatten(1)
    xp = to_paper(x, a).flatten(1)
    ybar = sp.ybar(paper_y(y, A).view_as(y))
    x0b, epsb, zb = sp.vt(x0p), sp.vt((xp - a * x0p) / (2 * b)), sp.vt(z)
    sig, sy, eta = 2 * b_n / a_n, 2 * SIGMA, 0.85
    lam = sy / sv.clamp_min(1e-300)
    null = x0b + math.sqrt(1 - eta ** 2) * sig * epsb + eta * sig * zb
    soft = x0b + math.sqrt(1 - eta ** 2) * sig * (ybar - x0b) / lam + eta * sig * zb
    hard = ybar + torch.sqrt((sig ** 2 - lam ** 2).clamp_min(0)) * zb
    assert 0 < int((meas & (sig < lam)).sum()) < int(meas.sum())
    xb = torch.where(meas & (sig < lam), soft, torch.where(meas, hard, null))
    x_next = a_n * sp.v(xb)
    torch.testing.assert_close(out, ((x_next + a_n) / 2).view_as(x))


def test_ddnm_plus_step_is_eqs_16_19_in_the_papers_units():
    """x0_c = x0_hat - Sigma A^+ (A x0_hat - y), Sigma = V diag(lambda) V^T, lambda_i = min(1, c s_i /
    (k sigma_y)), and the step's noise covariance Phi = V diag(c^2 - (k lambda_i sigma_y / s_i)^2) V^T
    (k the weight of x0_c in the step, c its noise std), in [-1, 1] units (c, sigma_y doubled)."""
    from lit_ip.methods.ddnm import DDNMPlus
    prior, op = gaussian_prior(), dense()
    method = DDNMPlus(10, eta=1.0)
    p, y = problem(method, prior, op, GaussianNoise(SIGMA))
    t, t_n = torch.tensor(60.0, dtype=F64), torch.tensor(30.0, dtype=F64)
    x = prior.sample(B, _rng(31)) * 0.9 + 0.1 * randn(B, *SHAPE)
    s, c = stochastic_state(method, prior, x, t, t_n)
    a, b, a_n, b_n = s.a, s.b, s.a_next, s.b_next
    z = randn(B, *SHAPE, seed=32)
    out = method.step(x, method.estimate(s, p), s, p, FixedNoise(z))
    a, a_n, b_net, b_net_n, cp, sy = (float(v) for v in (a, a_n, 2 * b, 2 * b_n, 2 * c, 2 * SIGMA))
    A, sp = matrix(op), Spectral(op)
    sv, meas = sp.s, sp.measured
    k = a_n - math.sqrt(b_net_n ** 2 - cp ** 2) * a / b_net
    lam = torch.where(meas, (cp * sv / (k * sy)).clamp(max=1), torch.zeros_like(sv))
    assert 0 < int((lam < 1).sum() - (~meas).sum()) < M                   # both kinds of coordinate
    phi = cp ** 2 - torch.where(meas, k * lam * sy / sv.clamp_min(1e-300), torch.zeros_like(sv)) ** 2
    ybar = sp.ybar(paper_y(y, A).view_as(y))
    x0b = sp.vt(to_paper(s.x0))
    x0c = sp.v(x0b - lam * (x0b - ybar))
    xp = to_paper(x, a).flatten(1)
    mean = a_n * x0c + math.sqrt(b_net_n ** 2 - cp ** 2) * (xp - a * x0c) / b_net
    x_next = mean + sp.v(phi.clamp_min(0).sqrt() * sp.vt(z))           # 0 up to rounding where lambda < 1
    torch.testing.assert_close(out, ((x_next + a_n) / 2).view_as(x))
