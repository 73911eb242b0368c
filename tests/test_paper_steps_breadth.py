"""One step of each survey-breadth method (ILVR, Score-SDE, MPGD, DDS, DSG, Score-ALD, Kadkhodaie &
Simoncelli, SNIPS), with its paper's hyperparameters, against the paper's update written out here
from the equation in the paper's [-1, 1] units (see tests/paper_steps_common.py) -- never by calling
the method's code."""
from __future__ import annotations

import math

import torch

from lit_ip.operators.noise import GaussianNoise
from lit_ip.operators.resize import AveragePoolSR

from paper_steps_common import (B, D, F64, SHAPE, SIGMA, FixedNoise, Spectral, _rng, dense, gaussian_prior,
                                matrix, one_estimate, paper_y, problem, randn, state, stochastic_state,
                                to_paper)


# --- ILVR (Choi et al. 2021, Algorithm 1) and Score-SDE replacement (Song et al. 2021, App. I) -------
def test_ilvr_step_is_algorithm_1_with_the_low_pass_filter():
    """x_{t-1} <- x'_{t-1} + phi_N(y_{t-1}) - phi_N(x'_{t-1}), y_{t-1} ~ q(y_{t-1} | y_ref), in the
    paper's [-1, 1] units, with phi_N = up(down(.)) for 2x average pooling and y_ref = up(y)."""
    from lit_ip.methods.ilvr import ILVR
    prior, op = gaussian_prior(), AveragePoolSR(2, SHAPE)
    method = ILVR(10)
    p, y = problem(method, prior, op, GaussianNoise(SIGMA))
    p.state.update(method.prepare(p))
    t, t_n = torch.tensor(600.0, dtype=F64), torch.tensor(500.0, dtype=F64)
    x_prime = prior.sample(B, _rng(12)) * 0.5 + 0.4 * randn(B, *SHAPE)      # the unconditional x'_{t-1}
    s = state(prior, x_prime, t, t_n, grad=False)
    z = randn(B, *SHAPE, seed=13)
    out = method.post_step(x_prime, s, p, FixedNoise(z))
    A = matrix(op)
    phi = torch.linalg.pinv(A) @ A                                          # down then up
    low = lambda v: (v.flatten(1) @ phi.T).view_as(v)
    a_n, b_net_n = float(s.a_next), 2 * float(s.b_next)
    y_ref = to_paper((y.flatten(1) @ torch.linalg.pinv(A).T).view_as(x_prime))
    y_next = a_n * y_ref + b_net_n * z
    xp = to_paper(x_prime, a_n)
    torch.testing.assert_close(out, (xp + low(y_next) - low(xp) + a_n) / 2)


def test_score_sde_step_with_lam_1_is_the_papers_replacement_on_masks():
    """Song et al.'s conditioning for inpainting: the observed pixels of x_{t-1} are replaced by a
    forward-noised y (a' y' + b'_net z in [-1, 1] units), the others kept."""
    from lit_ip.methods.score_sde import ScoreSDE
    from lit_ip.operators.inpainting import MaskInpainting
    prior = gaussian_prior()
    mask = (randn(1, *SHAPE[1:], seed=14) > 0).to(F64)
    op = MaskInpainting(mask, SHAPE)
    method = ScoreSDE(10, lam=1.0)
    p, y = problem(method, prior, op, GaussianNoise(SIGMA))
    p.state.update(method.prepare(p))
    t, t_n = torch.tensor(600.0, dtype=F64), torch.tensor(500.0, dtype=F64)
    x_prime = prior.sample(B, _rng(15)) * 0.5 + 0.4 * randn(B, *SHAPE)
    s = state(prior, x_prime, t, t_n, grad=False)
    z = randn(*y.shape, seed=16)
    out = method.post_step(x_prime, s, p, FixedNoise(z))
    a_n, b_net_n = float(s.a_next), 2 * float(s.b_next)
    xp = to_paper(x_prime, a_n)
    y_img = op.adjoint(y)                                                   # y on the observed pixels
    z_img = op.adjoint(z)
    replaced = torch.where(mask.bool(), a_n * to_paper(y_img) + b_net_n * z_img, xp)
    torch.testing.assert_close(out, (replaced + a_n) / 2)


# --- MPGD pixel space (He et al. 2024, Algorithm 1 without projection) -------------------------------
def test_mpgd_estimate_is_the_papers_gradient_step_on_the_tweedie_estimate():
    """x0_c = x0_hat - c_t grad_{x0} ||y - A x0||^2 at x0_hat, in the paper's [-1, 1] units, with our
    step schedule c_t = lr a' (the paper tunes c_t): the same number in both units (the loss is 4x
    larger there, its gradient in x0' 2x, and a move of x0' is 2x one of x0)."""
    from lit_ip.methods.mpgd import MPGD
    prior, op = gaussian_prior(), dense()
    method = MPGD(10, lr=0.3)
    x0_c, x, y, a, b = one_estimate(method, prior, op, seed=17)
    t, t_n = torch.tensor(500.0, dtype=F64), torch.tensor(400.0, dtype=F64)
    a_n = float(prior.coefficients(t_n, x)[0])
    A = matrix(op)
    x0p = to_paper(prior.denoise(x, t).flatten(1))
    yp = paper_y(y, A)
    grad = -2 * (yp - x0p @ A.T) @ A                                          # grad of ||y' - A x0'||^2
    torch.testing.assert_close(x0_c, ((x0p - 0.3 * a_n * grad + 1) / 2).view_as(x))


# --- DDS (Chung et al. 2024, Algorithm 1 / Eq. 15) ----------------------------------------------------
def test_dds_estimate_is_m_cg_steps_on_the_tweedie_estimate():
    """x0_c = x0_hat + d, d after M conjugate-gradient iterations from 0 on
    (A^T A + rho I) d = A^T (y - A x0_hat), written out here in the paper's units (rho = 1 / gamma)."""
    from lit_ip.methods.dds import DDS
    prior, op = gaussian_prior(), dense()
    method = DDS(10, rho=0.05, cg_iters=3)
    x0_c, x, y, a, b = one_estimate(method, prior, op, seed=18)
    A = matrix(op)
    x0p = to_paper(prior.denoise(x, torch.tensor(500.0, dtype=F64)).flatten(1))
    yp = paper_y(y, A)
    H = A.T @ A + 0.05 * torch.eye(D, dtype=F64)
    out = []
    for i in range(B):
        d = torch.zeros(D, dtype=F64)
        r = A.T @ (yp[i] - A @ x0p[i])
        q = r.clone()
        for _ in range(3):
            alpha = (r @ r) / (q @ H @ q)
            d, r_new = d + alpha * q, r - alpha * (H @ q)
            q, r = r_new + (r_new @ r_new) / (r @ r) * q, r_new
        out.append(x0p[i] + d)
    torch.testing.assert_close(x0_c, ((torch.stack(out) + 1) / 2).view_as(x))


# --- DSG (Yang et al. 2024, Algorithm 1) --------------------------------------------------------------
def test_dsg_step_is_algorithm_1_on_the_sphere():
    """x_{t-1} = mu + r d / ||d||, d = d_s + g_r (d* - d_s), d_s = sigma_t z, d* = -r grad / ||grad||,
    r = sqrt(n) sigma_t, grad of ||y - A x0_hat(x_t)|| per sample, in the paper's [-1, 1] units."""
    from lit_ip.methods.dsg import DSG
    prior, op = gaussian_prior(), dense()
    method = DSG(10, w=0.2)
    p, y = problem(method, prior, op, GaussianNoise(SIGMA))
    t, t_n = torch.tensor(600.0, dtype=F64), torch.tensor(500.0, dtype=F64)
    x = prior.sample(B, _rng(19)) * 0.5 + 0.4 * randn(B, *SHAPE)
    s, c = stochastic_state(method, prior, x, t, t_n, grad=True)
    a, b, a_n, b_n = s.a, s.b, s.a_next, s.b_next
    z = randn(B, *SHAPE, seed=20)
    with torch.enable_grad():
        assert method.guidance(s, p) is None
    out = method.step(x, s.x0.detach(), s, p, FixedNoise(z))
    # the paper, in [-1, 1] units (b_net = 2 b, sigma_t = 2 c)
    a, a_n, b_net, b_net_n, sig = float(a), float(a_n), 2 * float(b), 2 * float(b_n), 2 * float(c)
    A = matrix(op)
    yp = paper_y(y, A)
    xp = to_paper(x, a).flatten(1).detach().requires_grad_(True)
    with torch.enable_grad():
        x0p = to_paper(prior.denoise(((xp + a) / 2).view_as(x), t).flatten(1))
        (grad,) = torch.autograd.grad((yp - x0p @ A.T).norm(dim=1).sum(), xp)
    x0p = x0p.detach()
    mu = a_n * x0p + math.sqrt(b_net_n ** 2 - sig ** 2) * (xp.detach() - a * x0p) / b_net
    r = math.sqrt(D) * sig
    d_s = sig * z.flatten(1)
    d = d_s + 0.2 * (-r * grad / grad.norm(dim=1, keepdim=True) - d_s)
    x_next = mu + r * d / d.norm(dim=1, keepdim=True)
    torch.testing.assert_close(out, ((x_next + a_n) / 2).view_as(x))


# --- Score-ALD (Jalal et al. 2021, Algorithm 1) -------------------------------------------------------
def test_score_ald_step_is_algorithm_1_in_the_papers_units():
    """u <- u + alpha (s(u, sigma) + A^T (y - A u) / (sigma_y^2 + gamma_i^2)) + sqrt(2 alpha) z with
    alpha = delta sigma^2 and gamma_i = gamma sigma, all in [-1, 1] units (sigma' = 2 sigma)."""
    from lit_ip.methods.score_ald import ScoreALD
    prior, op = gaussian_prior(), dense()
    method = ScoreALD(10, delta=0.3, gamma=0.5)
    p, y = problem(method, prior, op, GaussianNoise(SIGMA))
    t = torch.tensor(300.0, dtype=F64)
    a, b = prior.coefficients(t, y)
    sigma = b / a
    u = prior.sample(B, _rng(21)) + float(sigma) * randn(B, *SHAPE, seed=22)
    z = randn(B, *SHAPE, seed=23)
    out = method.update(u, prior.denoise(a * u, t), sigma, p, FixedNoise(z))
    A = matrix(op)
    sp, syp = 2 * float(sigma), 2 * SIGMA
    up, yp = to_paper(u).flatten(1), paper_y(y, A)
    score = (to_paper(prior.denoise(a * u, t)).flatten(1) - up) / sp ** 2       # Tweedie in [-1, 1] units
    alpha = 0.3 * sp ** 2
    new = up + alpha * (score + (yp - up @ A.T) @ A / (syp ** 2 + (0.5 * sp) ** 2)) + math.sqrt(2 * alpha) * z.flatten(1)
    torch.testing.assert_close(out, ((new + 1) / 2).view_as(u))


# --- Kadkhodaie & Simoncelli (2021, Algorithm 2) ------------------------------------------------------
def test_kadkhodaie_simoncelli_iterations_are_algorithm_2():
    """u_k = u_{k-1} + h_k d_k + gamma_k z, d_k = (I - A^+ A) r(u) + A^+ (y - A u), r = x0_hat - u,
    h_k = h0 k / (1 + h0 (k - 1)), gamma_k^2 = ((1 - beta h_k)^2 - (1 - h_k)^2) sigma_k^2 and the level
    contracting by (1 - beta h_k) (the paper's images are in [0, 1], as ours). The denoiser's path
    times for the levels are the method's (its non-blind replacement of the measured level)."""
    from lit_ip.methods.kadkhodaie import KadkhodaieSimoncelli
    prior, op = gaussian_prior(), dense()
    method = KadkhodaieSimoncelli(num_steps=3, h0=0.2, beta=0.5, sigma0=0.5, sigma_min=0.01)
    p, y = problem(method, prior, op, GaussianNoise(SIGMA))
    draws = [randn(B, *SHAPE, seed=30 + k) for k in range(4)]
    out = method.sample(prior, op, y, FixedNoise(*draws))
    A = matrix(op)
    P = torch.linalg.pinv(A)
    u, sigma = 0.5 + 0.5 * draws[0].flatten(1), 0.5
    for k, t in zip(range(1, 4), method.times(prior.path)):
        h = 0.2 * k / (1 + 0.2 * (k - 1))
        a = prior.coefficients(t, y)[0]
        r = prior.denoise((a * u).view(B, *SHAPE), t).flatten(1) - u
        d = r - r @ (P @ A).T + (y.flatten(1) - u @ A.T) @ P.T
        gamma = sigma * math.sqrt((1 - 0.5 * h) ** 2 - (1 - h) ** 2)
        u = u + h * d + gamma * draws[k].flatten(1)
        sigma *= 1 - 0.5 * h
    torch.testing.assert_close(out, u.view_as(out))


# --- SNIPS (Kawar et al. 2021, Algorithm 1) -----------------------------------------------------------
def test_snips_step_is_the_spectral_langevin_update():
    """u_bar <- u_bar + alpha Lambda (V^T s(u) + grad) + sqrt(2 alpha Lambda) z, grad_j = s_j (y_bar_j -
    s_j u_bar_j) / |sigma_y^2 - sigma^2 s_j^2|, alpha = delta sigma^2, Lambda_j = min(1, |sigma_y^2 /
    s_j^2 - sigma^2| / sigma^2) (1 in the null space), in [-1, 1] units, written in the operator's
    own singular basis (which the noise z_bar is drawn in)."""
    from lit_ip.methods.snips import SNIPS
    prior, op = gaussian_prior(), dense()
    method = SNIPS(10, delta=0.3)
    p, y = problem(method, prior, op, GaussianNoise(SIGMA))
    t = torch.tensor(300.0, dtype=F64)
    a, b = prior.coefficients(t, y)
    sigma = b / a
    u = prior.sample(B, _rng(24)) + float(sigma) * randn(B, *SHAPE, seed=25)
    x0 = prior.denoise(a * u, t)
    z = randn(B, D, seed=26)
    out = method.update(u, x0, sigma, p, FixedNoise(z))
    A, basis = matrix(op), Spectral(op)
    s, measured = basis.s, basis.measured
    sp, syp = 2 * float(sigma), 2 * SIGMA
    up = to_paper(u)
    ubar = basis.vt(up)
    ybar = basis.uty(paper_y(y, A).view_as(y))                                # U^T y', unscaled
    score = basis.vt((to_paper(x0) - up) / sp ** 2)
    grad = torch.where(measured, s * (ybar - s * ubar) / (syp ** 2 - sp ** 2 * s ** 2).abs(), torch.zeros_like(ubar))
    lam = torch.where(measured, ((syp ** 2 / s.clamp_min(1e-300) ** 2 - sp ** 2).abs() / sp ** 2).clamp(max=1),
                      torch.ones_like(s))
    alpha = 0.3 * sp ** 2
    new_bar = ubar + alpha * lam * (score + grad) + torch.sqrt(2 * alpha * lam) * z
    torch.testing.assert_close(out, ((basis.v(new_bar).view_as(u) + 1) / 2))
