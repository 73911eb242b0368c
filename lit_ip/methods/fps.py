"""FPS and FPS-SMC: Dou & Song 2024, "Diffusion posterior sampling for linear inverse problems via
filtering" (ICLR 2024; the survey of Daras et al. 2024, arXiv:2410.00083, Sec. 3.3.2), for linear
operators with an SVD and Gaussian noise (noiseless included).

Step 1, a measurement sequence by the forward process (their Eq. for ``y_t = y_{t-1} + sigma_t A z_t``,
written for any path ``x_t = a_t x0 + b_t eps``): from ``y_clean = y`` towards the noisiest grid time,

    y_t' = (a_t' / a_t) y_t + sqrt(b_t'^2 - (a_t' b_t / a_t)^2) A z,

so that ``y_t = a_t y + A (b_t eps)`` and ``p(y_t | x_t) = N(A x_t, a_t^2 sigma_y^2 I)``.

Step 2, backward filtering: each DDPM step ``p(x' | x) = N(mu(x), c^2 I)`` is conditioned on
``y_t'``: ``x' ~ N(mu, c^2) N(y_t'; A x', a_t'^2 sigma_y^2)``, a Gaussian that is diagonal in the
singular basis (per coordinate: precision ``1/c^2 + s^2/v``, ``v = a'^2 sigma_y^2``; ``v = 0``
sets ``x_bar' = u^T y_t' / s``). FPS-SMC runs ``M`` particles and, before each move, weights them
by ``int p(x' | x) N(y_t'; A x', v) dx' = prod_i N((U^T y_t')_i; s_i mu_bar_i, v + s_i^2 c^2)`` and
resamples (systematically when the ESS falls below half; the paper resamples multinomially).
FPS is the one-particle case.

Paper vs code: the measurement sequence is drawn once per measurement and shared by its particles
(as in the paper); our last step to the clean end is deterministic, so the final conditioning uses
the transition variance ``b_last^2`` of the last grid time (DDPM's is about that). Units: ``sigma_y``
in [0, 1] image units, as the prior's path.

Real images (``benchmarks/real_images.md``: natural_ddpm, 8 held-out crops, posterior mean of 2
samples; shipped ``configs/method/fps.yaml`` 100 steps, ``fps_smc.yaml`` 8 particles: no step
parameter to tune, the particle count is what fits a CPU), PSNR dB, FPS / FPS-SMC: denoise 30.00 /
29.96 (y 20.44), sr_4x 26.71 / 26.60 (pinv 26.65), inpaint_70 23.74 / 25.95, inpaint_box 30.74 / 30.40,
deblur 30.59 / 30.49 (y 28.27), colorize 16.38 / 13.66 (grey 15.57). Neither beats the pixel-replicating
pseudo-inverse on 4x super-resolution by more than the standard error (a tie: the 2-sample mean of a
sampler keeps 1.5x the posterior variance) nor grey on colorization (the prior's colours are 2.2x too
saturated, ``benchmarks/colorization.md``; 8 particles do not fix the prior).

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``fps`` does not beat the best
baseline by more than the standard error on natural_ddpm sr_4x 26.71 vs pinv 26.65 (8 samples:
28.03, beats it), colorize 16.38 vs grey 15.57; natural_rf sr_4x 26.06 vs pinv 26.65 (8 samples:
27.67, beats it). It beats it on every task run with faces_ddpm (5 of 5 tasks), faces_rf (5 of 5
tasks). ``fps_smc`` does not beat the best baseline by more than the standard error on natural_ddpm
sr_4x 26.60 vs pinv 26.65, colorize 13.66 vs grey 15.57; natural_rf sr_4x 26.26 vs pinv 26.65. It
beats it on every task run with faces_ddpm (5 of 5 tasks), faces_rf (5 of 5 tasks).
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..sampling.schedules import Schedule
from ..sampling.steps import bridge_std, ddim_mean
from .base import Method
from .spectral import _pad
from .particles import ParticleRNG, check_chunk, chunked_denoise, gather_particles, pick_one, systematic_resample


class FPSSMC(Method):
    """FPS-SMC (Dou & Song 2024): filtering posterior sampling with ``num_particles`` particles.

    Cost: ``num_steps`` prior calls on ``B * num_particles`` images, no gradients.

    Args:
        num_steps: steps of the schedule.
        num_particles: particles per measurement (1 = FPS).
        ess_threshold: resample when ESS < ``ess_threshold * M``.
        particle_chunk: prior calls on at most this many images at once (results do not depend on it).
    """

    requires = ("svd",)
    gaussian_noise = True

    def __init__(self, num_steps: int = 100, num_particles: int = 16, ess_threshold: float = 0.5,
                 particle_chunk: Optional[int] = None, schedule: Optional[Schedule] = None):
        super().__init__(num_steps, schedule)
        if int(num_particles) < 1 or not 0 <= float(ess_threshold) <= 1:
            raise ValueError(f"{self.name} needs num_particles >= 1 and ess_threshold in [0, 1], "
                             f"got {num_particles}, {ess_threshold}")
        self.num_particles, self.ess_threshold = int(num_particles), float(ess_threshold)
        self.particle_chunk = check_chunk(particle_chunk)

    def _measurement_sequence(self, prior, operator, y, rng, pairs):
        """``y_t`` for every grid time (noisiest first), one sequence per measurement."""
        times = [t for t, _ in pairs]
        seq, yt = [], y
        a_prev, b_prev = torch.ones((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)
        for t in reversed(times):
            a, b = prior.path.coefficients(t)
            k = a / a_prev if float(a_prev) > 0 else torch.zeros(())
            std = torch.sqrt((b ** 2 - (k * b_prev) ** 2).clamp_min(0))
            z = rng.randn((y.shape[0], *prior.image_shape)).to(y)
            yt = k.to(y) * yt + std.to(y) * operator(z)
            seq.append(yt)
            a_prev, b_prev = a, b
        return seq[::-1]

    def sample(self, prior, operator, y, rng, noise=None):
        p = self.setup(prior, operator, y, noise)
        sigma = p.sigma
        B, M = y.shape[0], self.num_particles
        spec = p.spectrum()
        n = spec.s.shape[1]
        rep = lambda z: z.expand(B, -1).repeat_interleave(M, 0)
        s, meas = rep(spec.s), rep(spec.measured)
        pairs = self.pairs(prior)
        ys = self._measurement_sequence(prior, operator, y, rng.spawn("repeat"), pairs)
        prng = ParticleRNG(rng, M)
        x = prior.init_noise(B * M, prng, pairs[0][0]).to(y)
        logw = torch.zeros(B, M, dtype=torch.float64, device=y.device)
        for k, (t, t_next) in enumerate(pairs):
            a, b = prior.coefficients(t, x)
            x0 = chunked_denoise(prior, x, t, self.particle_chunk)
            if t_next is None:
                a_n, b_n, c, uy = torch.ones_like(a), torch.zeros_like(b), b, rep(spec.uy)
                mubar = spec.vt(x0)
            else:
                a_n, b_n = prior.coefficients(t_next, x)
                c = bridge_std(a, b, a_n, b_n, 1.0)
                mubar = spec.vt(ddim_mean(x, x0, a, b, a_n, b_n, c))
                uy = rep(_pad(operator.ut(ys[k + 1]), n))
            v = (a_n * sigma) ** 2
            c2 = c ** 2
            if M > 1:                                                   # weights of the move
                var = v + s ** 2 * c2
                ll = -0.5 * ((uy - s * mubar) ** 2 / var.clamp_min(1e-300) + torch.log(2 * math.pi * var.clamp_min(1e-300)))
                logw = logw + torch.where(meas, ll, torch.zeros_like(ll)).sum(1).view(B, M).double()
                low = 1.0 / (torch.softmax(logw, 1) ** 2).sum(1) < self.ess_threshold * M
                u = rng.rand((B, 1)).to(logw)
                idx = torch.where(low[:, None], systematic_resample(logw, u),
                                  torch.arange(M, device=y.device).expand(B, M))
                mubar = gather_particles(mubar, idx)
                logw = torch.where(low[:, None], torch.zeros_like(logw), logw)
            z = prng.randn(mubar.shape).to(mubar)
            if float(c) == 0:
                new = mubar
            elif v > 0:
                prec = 1.0 / c2 + s ** 2 / v
                mean = (mubar / c2 + s * uy / v) / prec
                new = torch.where(meas, mean + prec.rsqrt() * z, mubar + c * z)
            else:                                                        # noiseless: project
                new = torch.where(meas, uy / s.clamp_min(1e-300), mubar + c * z)
            if t_next is None:
                new = torch.where(meas, new, mubar)                      # no noise off the data at the end
            x = spec.v(new)
        if M == 1:
            return x.detach()
        return gather_particles(x, pick_one(logw, rng.rand((B, 1)))).detach()

    def expected_nfe(self, prior):
        return {"nfe": len(self.pairs(prior)) * self.num_particles, "nfe_backward": 0}


class FPS(FPSSMC):
    """FPS (Dou & Song 2024): filtering posterior sampling with one particle (no weights)."""

    def __init__(self, num_steps: int = 100, particle_chunk: Optional[int] = None,
                 schedule: Optional[Schedule] = None):
        super().__init__(num_steps, 1, 0.5, particle_chunk, schedule)
