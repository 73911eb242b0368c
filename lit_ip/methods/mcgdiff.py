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

Paper vs code: the paper rounds ``tau_i`` to a grid step; here ``tau_i`` is exact. The model's
DDPM transition ``t_k -> t_k+1`` is the Gaussian bridge ``q(x' | x_t, x0_hat)``, which factors exactly
through any intermediate time, so a coordinate whose ``tau_i`` falls inside the step is moved by the
bridge to ``tau_i``
(weight ``N(a_tau y_bar_i; mu_tau,i, c_tau^2)``), set to ``a_tau y_bar_i``, and moved on by the
bridge from ``tau_i`` to ``t_k+1`` (no extra network call).

A coordinate observed below the last grid level (``lambda_i < b_last / a_last``, noiseless included)
has no grid time to be absorbed at; it keeps the noiseless potential ``N(x_bar_i; a_t y_bar_i, b_t^2)``
(``= q(x_t | x0_bar_i = y_bar_i)``; any positive potential keeps the sampler consistent) and the last
step, to the clean end, takes ``p(x0 | x_last) ~ N(x0_hat, r^2)``, ``r = b_last / a_last``: weight
``N(y_bar_i; x0_hat_i, r^2 + lambda_i^2) / g_last,i`` and ``x0_bar_i`` drawn from
``N(x0_hat_i, r^2) N(y_bar_i; ., lambda_i^2)`` (``= y_bar_i`` when noiseless). (The earlier version
used ``b_t^2 - a_t^2 lambda_i^2`` there too: at the last grid time it is ~0 when ``lambda_i`` is just
below ``b_last / a_last`` (``1e-8`` on the Cardoso benchmark, where ``sigma_y = 0.01 s_max`` meets the
VP grid's last level 0.01), so the last weights ``1 / g_last`` had infinite variance and the measured
coordinate's posterior variance came out 2500x too small.) The unobserved coordinates end at
``x0_hat`` (our last step is deterministic). A coordinate observed above the first grid level
(``lambda_i > b_0 / a_0``; the paper's grid rounding has no time for it) starts from the prior draw
``N(0, b_0^2)`` conditioned on its observation seen at ``t_0``, ``N(a_0 y_bar_i; x, a_0^2 lambda_i^2 -
b_0^2)`` (exact as ``lambda_i -> b_0 / a_0``, the prior as ``lambda_i -> inf``). (It used to be set to
``a_0 y_bar_i``, whose noise ``a_0 sigma_y / s_i`` is large for deblurring's tiny singular values:
natural_ddpm deblur 22.0 dB against the measurement's 28.3.) Systematic resampling (the paper: multinomial). Units: ``sigma_y``
in [0, 1] image units, as the prior's path; nothing is converted.

Real images (``benchmarks/real_images.md``: natural_ddpm, 8 held-out crops, posterior mean of 2
samples, shipped ``configs/method/mcgdiff.yaml``: 8 particles, what fits a CPU; no step parameter),
PSNR dB: denoise 30.68 (y 20.44), sr_4x 27.37 (pinv 26.65), inpaint_70 24.35, inpaint_box 30.66, deblur
31.56 (y 28.27; 22.03 before the above-the-grid start was fixed), colorize 15.05 (grey 15.57). It loses
only on colorization, where the prior's colours are 2.2x too saturated (``benchmarks/colorization.md``):
8 particles weight samples of that prior, they do not correct it.

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``mcgdiff`` does not beat the best
baseline by more than the standard error on natural_ddpm colorize 15.05 vs grey 15.57 (8 samples:
16.79, beats it); natural_rf sr_4x 26.63 vs pinv 26.65 (8 samples: 27.91, beats it). It beats it on
every task run with faces_ddpm (5 of 5 tasks), faces_rf (5 of 5 tasks).
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

    @staticmethod
    def _coefficients_at_levels(path, lam):
        """``(a, b)`` of ``path`` at the (continuous) times where ``b / a = lam``, by interpolation in
        log-level on a fine time grid (levels increase with time on every path)."""
        t = torch.linspace(float(path.t_min), float(path.t_max), 4097, dtype=torch.float64)
        a, b = path.coefficients(t)
        ok = a > 0
        a, b = a[ok], b[ok]
        logl = torch.log(b / a)
        x = torch.log(lam.to(torch.float64).clamp_min(1e-300)).clamp(float(logl[0]), float(logl[-1]))
        i = torch.searchsorted(logl, x.contiguous()).clamp(1, len(logl) - 1)
        w = (x - logl[i - 1]) / (logl[i] - logl[i - 1])
        a_t = torch.exp(torch.log(a[i - 1]) * (1 - w) + torch.log(a[i]) * w)
        return a_t.to(lam), (a_t * torch.exp(x)).to(lam)

    @staticmethod
    def _bridge(x, x0, a, b, a_n, b_n):
        """Mean and variance of the DDPM bridge ``q(x' | x, x0)`` from ``(a, b)`` to ``(a_n, b_n)``, per entry."""
        ratio = (a * b_n / (a_n * b)).clamp(max=1.0)
        c2 = (b_n ** 2 * (1 - ratio ** 2)).clamp_min(0)
        return a_n * x0 + torch.sqrt((b_n ** 2 - c2).clamp_min(0)) * (x - a * x0) / b, c2

    @staticmethod
    def _start_above_grid(xbar, above, a0, b0, ybar, lam):
        """Coordinates observed above the first grid level (``lambda_i > b_0 / a_0``): ``x_bar_0,i``
        from ``N(0, b_0^2) N(a_0 y_bar_i; x, e_i)``, ``e_i = a_0^2 lambda_i^2 - b_0^2`` (the observation
        seen at ``t_0``), reusing the prior draw ``xbar ~ N(0, b_0^2)`` as its standard normal."""
        e = (a0 ** 2 * lam ** 2 - b0 ** 2).clamp_min(0)
        mean = b0 ** 2 * a0 * ybar / (b0 ** 2 + e)
        std = b0 * torch.sqrt(e / (b0 ** 2 + e))
        return torch.where(above, mean + std * xbar / b0, xbar)

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
        # tau: index of the first grid time below the observation's level (-1: never observed)
        past = level[None, None] < lam[..., None]
        first = torch.where(past.any(-1), past.to(torch.int64).argmax(-1), torch.full(lam.shape, n_grid))
        tau = torch.where(meas, first, torch.full_like(first, -1))
        a_tau, b_tau = self._coefficients_at_levels(prior.path, torch.where(meas & ~at_end, lam, torch.ones_like(lam)))

        def potential(k):
            """(active mask, mean, var) of g at grid step k, per coordinate (noiseless g where the
            observation is below the grid, see the module docstring)."""
            active = meas & (k < tau)
            var = b_k[k] ** 2 - torch.where(at_end, torch.zeros_like(lam), a_k[k] ** 2 * lam ** 2)
            return active, a_k[k] * ybar, torch.where(active, var.clamp_min(1e-300), torch.ones_like(var))

        prng = ParticleRNG(rng, N)
        x = prior.init_noise(B * N, prng, pairs[0][0]).to(y)
        x = spec.v(self._start_above_grid(spec.vt(x), meas & (tau == 0), a_k[0], b_k[0], ybar, lam))
        logw = torch.zeros(B, N, dtype=torch.float64, device=y.device)
        for k, (t, t_next) in enumerate(pairs):
            a, b = a_k[k], b_k[k]
            x0 = chunked_denoise(prior, x, t, self.particle_chunk)
            act, mean, var = potential(k)
            xbar, x0bar = spec.vt(x), spec.vt(x0)
            log_g = torch.where(act, _log_normal(xbar, mean, var), torch.zeros_like(xbar)).sum(1)
            if t_next is None:                                            # last step, to the clean end
                r2 = ((b / a) ** 2).expand_as(x0bar)                      # p(x0 | x_last) ~ N(x0_hat, r2)
                fin = _log_normal(ybar, x0bar, r2 + lam ** 2)
                post_var = r2 * lam ** 2 / (r2 + lam ** 2)
                post_mean = (lam ** 2 * x0bar + r2 * ybar) / (r2 + lam ** 2)
                z = prng.randn(x0bar.shape).to(x0bar)
                x0 = spec.v(torch.where(at_end, post_mean + post_var.sqrt() * z, x0bar))
                logw = logw + (torch.where(at_end, fin, torch.zeros_like(fin)).sum(1) - log_g).view(B, N).double()
                x = x0
                break
            a_n, b_n = prior.coefficients(t_next, x)
            c = bridge_std(a, b, a_n, b_n, 1.0)
            mubar = spec.vt(ddim_mean(x, x0, a, b, a_n, b_n, c))
            act_n, mean_n, var_n = potential(k + 1)
            absorb = meas & ~at_end & (tau == k + 1)                     # tau_i inside this step
            mu_tau, c2_tau = self._bridge(xbar, x0bar, a, b, a_tau, b_tau)
            mu_after, c2_after = self._bridge(a_tau * ybar, x0bar, a_tau, b_tau, a_n, b_n)
            c2 = (c ** 2).clamp_min(1e-300)
            logz = torch.where(act_n, _log_normal(mean_n, mubar, c2 + var_n), torch.zeros_like(mubar))
            logz = logz + torch.where(absorb, _log_normal(a_tau * ybar, mu_tau, c2_tau.clamp_min(1e-300)),
                                      torch.zeros_like(mubar))
            logw = (logz.sum(1) - (log_g if k > 0 else 0)).view(B, N).double()
            idx = systematic_resample(logw, rng.rand((B, 1)).to(logw))
            mubar, mu_after, c2_after = (gather_particles(v, idx) for v in (mubar, mu_after, c2_after))
            prop_var = 1.0 / (1.0 / c2 + 1.0 / var_n)
            prop_mean = prop_var * (mubar / c2 + mean_n / var_n)
            z = prng.randn(mubar.shape).to(mubar)
            new = torch.where(act_n, prop_mean + prop_var.sqrt() * z, mubar + c * z)
            new = torch.where(absorb, mu_after + c2_after.sqrt() * z, new)
            x = spec.v(new)
            logw = torch.zeros_like(logw)
        k = pick_one(logw, rng.rand((B, 1)))
        return gather_particles(x, k).detach()

    def expected_nfe(self, prior):
        return {"nfe": len(self.pairs(prior)) * self.num_particles, "nfe_backward": 0}
