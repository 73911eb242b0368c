"""SMCDiff: Trippe, Yim, Tischer, Baker, Broderick, Barzilay & Jaakkola 2023, "Diffusion probabilistic
modeling of protein backbones in 3D for the motif-scaffolding problem" (ICLR 2023, arXiv:2206.04119),
Algorithm 1: sequential Monte Carlo for *replacement* problems (inpainting: part of ``x`` is observed
exactly), asymptotically exact as the number of particles grows.

The observed part follows one forward trajectory drawn from ``y``: ``y_clean = y``, and towards the
noisiest grid time ``y_t' = (a_t'/a_t) y_t + sqrt(b_t'^2 - (a_t' b_t / a_t)^2) z`` (so
``y_t ~ q(x_t | x0 = y)`` on the observed part, shared by the particles). Particles carry the
unobserved part; each step ``t -> t'`` of the model's DDPM transition ``N(mu([x_t, y_t]), c^2)``

    w_k = N(y_t'; mu_obs(x_t^k, y_t), c^2)        (the model's density of the observed part),
    resample by w, then  x_t'^k = mu_unobs + c z  and the observed part set to y_t'.

Here the observed part is taken in the operator's singular basis (``x_bar = V^T x`` on coordinates with
``s > 0``, ``y_bar = U^T y / s``), which for inpainting masks is the observed pixels themselves, so any
SVD operator is a replacement problem in that basis (as in DDRM / DDNM).

Paper vs code: the paper is noiseless; noisy measurements are replaced as they are (their noise
``sigma_y / s`` is copied into the sample, a bias that grows with ``sigma_y``; MCGdiff handles the
noise). ``svd_cutoff`` (ours; default 0, the paper's) leaves singular values at or below it
unobserved, so that deblurring's tiny ones do not copy ``sigma_y / s`` into the sample (with 0 the
output on deblurring is the pseudo-inverse: natural_ddpm 4.94 dB). Our last step to the clean end is deterministic, so its weight uses the variance ``b_last^2`` of
the last grid time. Systematic resampling at every step (the paper: multinomial).

Real images (``benchmarks/real_images.md``: natural_ddpm, 8 held-out crops, posterior mean of 2
samples, shipped ``configs/method/smcdiff.yaml``: 8 particles, ``svd_cutoff`` 0.2 from the training-crop
sweep), PSNR dB: denoise 20.44 (= y), sr_4x 26.22 (pinv 26.65), inpaint_70 27.37, inpaint_box 29.00,
deblur 28.82 (y 28.27), colorize 14.12 (grey 15.57). It loses on three tasks by construction: on
denoising every coordinate is observed and replaced by the noisy y; on 4x super-resolution and
colorization the replaced coordinates carry the measurement noise ``sigma_y / s`` (0.1 and 0.04) and
the rest follows a prior whose colours are too saturated (``benchmarks/colorization.md``).

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``smcdiff`` does not beat the best
baseline by more than the standard error on natural_ddpm denoise 20.44 vs pinv 20.44, sr_4x 26.22 vs
pinv 26.65, colorize 14.12 vs grey 15.57; faces_ddpm denoise 20.00 vs pinv 20.00; natural_rf denoise
20.44 vs pinv 20.44, sr_4x 25.84 vs pinv 26.65, deblur 28.69 vs y 28.27; faces_rf denoise 20.00 vs
pinv 20.00.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..sampling.schedules import Schedule
from ..sampling.steps import bridge_std, ddim_mean
from .base import Method
from .projection import check_cutoff
from .particles import ParticleRNG, check_chunk, chunked_denoise, gather_particles, pick_one, systematic_resample


class SMCDiff(Method):
    """SMCDiff (Trippe et al. 2023) for replacement problems (inpainting; any SVD operator in its basis).

    Cost: ``num_steps`` prior calls on ``B * num_particles`` images, no gradients.

    Args:
        num_steps: steps of the schedule.
        num_particles: particles per measurement.
        particle_chunk: prior calls on at most this many images at once (results do not depend on it).
        svd_cutoff: singular values at or below it count as unobserved (0: every ``s > 0`` is
            replaced, the paper's noiseless problem); for noisy ill-conditioned operators (deblurring).
    """

    requires = ("svd",)
    gaussian_noise = True

    def __init__(self, num_steps: int = 100, num_particles: int = 16, particle_chunk: Optional[int] = None,
                 svd_cutoff: float = 0.0, schedule: Optional[Schedule] = None):
        super().__init__(num_steps, schedule)
        if int(num_particles) < 1:
            raise ValueError(f"SMCDiff needs num_particles >= 1, got {num_particles}")
        self.num_particles, self.particle_chunk = int(num_particles), check_chunk(particle_chunk)
        self.svd_cutoff = check_cutoff(svd_cutoff)

    def sample(self, prior, operator, y, rng, noise=None):
        p = self.setup(prior, operator, y, noise)
        B, N = y.shape[0], self.num_particles
        spec = p.spectrum(self.svd_cutoff)
        rep = lambda z: z.expand(B, -1).repeat_interleave(N, 0)
        meas = rep(spec.measured)
        pairs = self.pairs(prior)
        yrng = rng.spawn("repeat")                                   # the observed trajectory
        traj, yt = {}, spec.ybar
        a_prev, b_prev = torch.ones((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)
        for k in reversed(range(len(pairs))):
            a, b = prior.path.coefficients(pairs[k][0])
            ratio = a / a_prev
            std = torch.sqrt((b ** 2 - (ratio * b_prev) ** 2).clamp_min(0))
            yt = ratio.to(yt) * yt + std.to(yt) * yrng.randn(yt.shape).to(yt)
            traj[k] = rep(yt)
            a_prev, b_prev = a, b
        traj[len(pairs)] = rep(spec.ybar)
        prng = ParticleRNG(rng, N)
        x = prior.init_noise(B * N, prng, pairs[0][0]).to(y)
        x = spec.v(torch.where(meas, traj[0], spec.vt(x)))
        logw = torch.zeros(B, N, dtype=torch.float64, device=y.device)
        for k, (t, t_next) in enumerate(pairs):
            a, b = prior.coefficients(t, x)
            x0 = chunked_denoise(prior, x, t, self.particle_chunk)
            if t_next is None:
                mubar, c, var = spec.vt(x0), torch.zeros_like(b), b ** 2
            else:
                a_n, b_n = prior.coefficients(t_next, x)
                c = bridge_std(a, b, a_n, b_n, 1.0)
                mubar, var = spec.vt(ddim_mean(x, x0, a, b, a_n, b_n, c)), c ** 2
            target = traj[k + 1]
            var = var.clamp_min(1e-300)
            ll = -0.5 * ((target - mubar) ** 2 / var + torch.log(2 * math.pi * var))
            logw = logw + torch.where(meas, ll, torch.zeros_like(ll)).sum(1).view(B, N).double()
            if t_next is None:
                x = spec.v(torch.where(meas, target, mubar))
                break
            idx = systematic_resample(logw, rng.rand((B, 1)).to(logw))
            mubar = gather_particles(mubar, idx)
            logw = torch.zeros_like(logw)
            new = mubar + c * prng.randn(mubar.shape).to(mubar)
            x = spec.v(torch.where(meas, target, new))
        return gather_particles(x, pick_one(logw, rng.rand((B, 1)))).detach()

    def expected_nfe(self, prior):
        return {"nfe": len(self.pairs(prior)) * self.num_particles, "nfe_backward": 0}
