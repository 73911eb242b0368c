"""MCGdiff: Cardoso, Janati el Idrissi, Le Corff & Moulines 2023, "Monte Carlo guided diffusion for
Bayesian linear inverse problems" (ICLR 2024, arXiv:2308.07983), Algorithm 1 and its noisy
extension (Sec. 3): sequential Monte Carlo in the operator's singular basis, asymptotically exact
as the number of particles grows.

With ``A = U diag(s) V^T``, coordinates ``x_bar = V^T x`` and ``y_bar_i = (U^T y)_i / s_i`` the
measurement reads ``y_bar_i = x_bar_0,i + (sigma_y / s_i) n_i``: coordinate ``i`` is observed with
noise level ``lambda_i = sigma_y / s_i``. Since ``x_t = a_t x0 + b_t eps``, ``a_tau y_bar_i`` is
distributed like ``x_bar_tau,i`` at the time ``tau_i`` with ``b/a = lambda_i``: the noisy problem
is a noiseless inpainting of ``x_tau``. Each particle step ``t -> t'`` (DDPM transition
``N(mu(x_t), c^2)`` of the prior, ``c`` the ancestral std) uses the potentials

    g_t,i(x) = N(x_bar_i; a_t y_bar_i, b_t^2 - a_t^2 lambda_i^2)      (t noisier than tau_i),

an optimal proposal ``q(x' | x) ~ p(x' | x) g_t'(x')`` (a Gaussian product per measured
coordinate; at ``t' = tau_i`` the coordinate is set to ``a_tau y_bar_i``; after ``tau_i`` and
off the measured coordinates the prior transition), and weights
``w = int p(x' | x) g_t'(x') dx' / g_t(x) = prod_i N(a' y_bar_i; mu_bar_i, c^2 + v'_i) / g_t,i(x)``
computed before the move (auxiliary particle filter), with resampling at every step.

Paper vs code here: ``tau_i`` is rounded to the grid time whose level ``b/a`` is nearest to
``lambda_i`` in log scale (the paper picks a grid step too); a coordinate with ``lambda_i`` below the
last grid level is instead weighted at the end by its exact likelihood ``N(y_bar_i; x_bar_0,i,
lambda_i^2)``, and a noiseless one (``sigma_y = 0``) is set to ``y_bar_i`` with the weight
``N(y_bar_i; x_bar_0,i, b_last^2)`` (our deterministic last step has no transition variance; the
DDPM one is about ``b_last^2``). Systematic resampling (the paper: multinomial). Units: ``sigma_y``
in [0, 1] image units, as the prior's path; nothing is converted.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..sampling.schedules import Schedule
from ..sampling.steps import bridge_std, ddim_mean
from .base import Method
from .particles import ParticleRNG, check_chunk, chunked_denoise, gather_particles, pick_one, systematic_resample


def _log_normal(x, mean, var):
    return -0.5 * ((x - mean) ** 2 / var + torch.log(2 * math.pi * var))


class MCGdiff(Method):
    """MCGdiff (Cardoso et al. 2023) for linear operators with an SVD and Gaussian noise (noiseless too).

    Cost: ``num_steps`` prior calls on ``B * num_particles`` images, no gradients.

    Args:
        num_steps: steps of the schedule.
        num_particles: particles per measurement ``N``.
        particle_chunk: prior calls on at most this many images at once (None = all); results do
            not depend on it.
    """

    requires = ("svd",)
    gaussian_noise = True

    def __init__(self, num_steps: int = 100, num_particles: int = 32, particle_chunk: Optional[int] = None,
                 schedule: Optional[Schedule] = None):
        super().__init__(num_steps, schedule)
        if int(num_particles) < 1:
            raise ValueError(f"MCGdiff needs num_particles >= 1, got {num_particles}")
        self.num_particles, self.particle_chunk = int(num_particles), check_chunk(particle_chunk)

    def sample(self, prior, operator, y, rng, noise=None):
        p = self.setup(prior, operator, y, noise)
        sigma = p.sigma
        B, N = y.shape[0], self.num_particles
        spec = p.spectrum()
        rep = lambda z: z.expand(B, -1).repeat_interleave(N, 0)
        s, ybar, meas = rep(spec.s), rep(spec.ybar), rep(spec.measured)
        pairs = self.pairs(prior)
        coef = [prior.coefficients(t, y) for t, _ in pairs]
        a_k = torch.stack([c[0] for c in coef]).to(y)
        b_k = torch.stack([c[1] for c in coef]).to(y)
        level = torch.where(a_k > 0, b_k / a_k.clamp_min(1e-300), torch.full_like(a_k, math.inf))
        n_grid = len(pairs)
        lam = torch.where(meas, sigma / s.clamp_min(1e-300), torch.zeros_like(s))      # observation level
        at_end = meas & (lam < level[-1])
        nearest = (torch.log(level)[None, None] - torch.log(lam.clamp_min(1e-300))[..., None]).abs().argmin(-1)
        tau = torch.where(meas, torch.where(at_end, torch.full_like(nearest, n_grid), nearest),
                          torch.full_like(nearest, -1))                               # -1: never observed
        lev = torch.where(at_end | ~meas, lam, level[tau.clamp(0, n_grid - 1)])

        def potential(k):
            """(active mask, mean, var) of g at grid step k, per coordinate."""
            active = meas & (k < tau)
            var = (b_k[k] ** 2 - a_k[k] ** 2 * lev ** 2)
            return active, a_k[k] * ybar, torch.where(active, var.clamp_min(1e-300), torch.ones_like(var))

        prng = ParticleRNG(rng, N)
        x = prior.init_noise(B * N, prng, pairs[0][0]).to(y)
        logw = torch.zeros(B, N, dtype=torch.float64, device=y.device)
        for k, (t, t_next) in enumerate(pairs):
            a, b = a_k[k], b_k[k]
            x0 = chunked_denoise(prior, x, t, self.particle_chunk)
            act, mean, var = potential(k)
            xbar = spec.vt(x)
            log_g = torch.where(act, _log_normal(xbar, mean, var), torch.zeros_like(xbar)).sum(1)
            if t_next is None:                                            # deterministic last step
                x0bar = spec.vt(x0)
                if sigma > 0:
                    fin = _log_normal(ybar, x0bar, lam.clamp_min(1e-300) ** 2)
                else:
                    fin = _log_normal(ybar, x0bar, (b ** 2).expand_as(x0bar))
                    x0bar = torch.where(at_end, ybar, x0bar)
                    x0 = spec.v(x0bar)
                logw = logw + (torch.where(at_end, fin, torch.zeros_like(fin)).sum(1) - log_g).view(B, N).double()
                x = x0
                break
            a_n, b_n = prior.coefficients(t_next, x)
            c = bridge_std(a, b, a_n, b_n, 1.0)
            mubar = spec.vt(ddim_mean(x, x0, a, b, a_n, b_n, c))
            act_n, mean_n, var_n = potential(k + 1)
            clamp = meas & (tau == k + 1)
            c2 = (c ** 2).clamp_min(1e-300)
            logz = torch.where(act_n, _log_normal(mean_n, mubar, c2 + var_n), torch.zeros_like(mubar))
            logz = logz + torch.where(clamp, _log_normal(a_n * ybar, mubar, c2.expand_as(mubar)), torch.zeros_like(mubar))
            logw = (logz.sum(1) - (log_g if k > 0 else 0)).view(B, N).double()
            idx = systematic_resample(logw, rng.rand((B, 1)).to(logw))
            mubar, = (gather_particles(mubar, idx),)
            prop_var = 1.0 / (1.0 / c2 + 1.0 / var_n)
            prop_mean = prop_var * (mubar / c2 + mean_n / var_n)
            z = prng.randn(mubar.shape).to(mubar)
            new = torch.where(act_n, prop_mean + prop_var.sqrt() * z, mubar + c * z)
            new = torch.where(clamp, a_n * ybar, new)
            x = spec.v(new)
            logw = torch.zeros_like(logw)
        k = pick_one(logw, rng.rand((B, 1)))
        return gather_particles(x, k).detach()

    def expected_nfe(self, prior):
        return {"nfe": len(self.pairs(prior)) * self.num_particles, "nfe_backward": 0}
