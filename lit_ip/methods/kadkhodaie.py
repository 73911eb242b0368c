"""Solving linear inverse problems using the prior implicit in a denoiser, Kadkhodaie & Simoncelli
2021, NeurIPS (arXiv:2007.13640), Algorithm 2 (constrained sampling); survey form: Daras et al.
2024 (arXiv:2410.00083), Eqs. 3.2-3.4.

Coarse-to-fine stochastic gradient ascent on the noisy density with the denoiser residual
``r(u) = x0_hat(u) - u`` (Tweedie: ``sigma^2 grad log p_sigma(u)``), constrained to the measurements:

    d_k = (I - A^+ A) r(u_{k-1}) + A^+ (y - A u_{k-1}),
    h_k = h0 k / (1 + h0 (k - 1)),
    gamma_k^2 = ((1 - beta h_k)^2 - (1 - h_k)^2) sigma_k^2,
    u_k = u_{k-1} + h_k d_k + gamma_k z,

from ``u_0 = 0.5 + sigma_0 z`` until ``sigma_k < sigma_min`` (the paper's ``M M^T`` for a matrix with
orthonormal columns is ``A^+ A`` here, so any linear operator works). ``beta`` controls the noise
injection (1: none, deterministic ascent; small: much noise), ``h0`` the initial step.

Where this differs from the paper: its denoiser is *blind* and it measures ``sigma_k^2 =
||d_k||^2 / n`` from the residual. Our priors are evaluated at a given level, so the level follows
the step's own contraction ``sigma_k = (1 - beta h_k) sigma_{k-1}`` (the value the measured one
follows in expectation), is fixed in advance (the same for every sample, so batches do not couple)
and sets the number of iterations; ``num_steps`` caps it (the ``schedule`` argument is unused: the levels are the plan). The denoiser is called at the path time
of level ``sigma_k`` (VE coordinates: ``x_t = a u``). Units: images in [0, 1] as the paper;
``sigma`` in [0, 1] units.

Real images (shipped settings ``configs/method/kadkhodaie_simoncelli.yaml``, chosen on 4 training
crops with the natural_ddpm prior; ``benchmarks/method_settings_sweep.md``): mean PSNR (dB): denoise
20.38, sr_4x 23.52, inpaint_70 25.45, inpaint_box 25.96, deblur 19.84, colorize 22.84. It does not
beat the best trivial estimate on: denoise 20.38 vs measurement 20.50; sr_4x 23.52 vs pinv 23.66;
deblur 19.84 vs measurement 25.80; colorize 22.84 vs grey 25.30. Why: its output keeps noise of
level sigma_min and the constraint copies measurement noise: it loses on denoising, SR (by 0.1 dB),
deblurring and colorization.

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``kadkhodaie_simoncelli`` does not
beat the best baseline by more than the standard error on natural_ddpm denoise 20.38 vs pinv 20.44,
sr_4x 26.76 vs pinv 26.65 (8 samples: 27.37, beats it), deblur 20.25 vs y 28.27, colorize 14.77 vs
grey 15.57; faces_ddpm denoise 19.91 vs pinv 20.00, deblur 19.91 vs y 23.28; natural_rf denoise
20.38 vs pinv 20.44, sr_4x 26.60 vs pinv 26.65 (8 samples: 27.28, beats it), deblur 20.27 vs y
28.27; faces_rf denoise 19.91 vs pinv 20.00, deblur 19.90 vs y 23.28.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..sampling.schedules import Schedule, time_at_level
from .base import Method
from .projection import check_cutoff, pinv, require_svd_for_cutoff


class KadkhodaieSimoncelli(Method):
    """Kadkhodaie & Simoncelli (2021), Algorithm 2 with a non-blind denoiser.

    Args:
        num_steps: cap on the iterations (network evaluations).
        h0: initial step.
        beta: noise-injection parameter (1 = no noise).
        sigma0, sigma_min: start and stop levels in [0, 1] units.
        svd_cutoff: truncated ``A^+`` for SVD operators (noisy blur; as ILVR); 0 = exact.
    """

    requires = ("linear",)

    def __init__(self, num_steps: int = 1000, h0: float = 0.01, beta: float = 0.01, sigma0: float = 1.0,
                 sigma_min: float = 0.01, svd_cutoff: float = 0.0, schedule: Optional[Schedule] = None):
        super().__init__(num_steps, schedule)
        if not (0 < float(h0) <= 1 and 0 < float(beta) <= 1 and float(sigma0) > float(sigma_min) > 0):
            raise ValueError(f"{self.name} needs 0 < h0 <= 1, 0 < beta <= 1, sigma0 > sigma_min > 0, "
                             f"got h0={h0}, beta={beta}, sigma0={sigma0}, sigma_min={sigma_min}")
        self.h0, self.beta = float(h0), float(beta)
        self.sigma0, self.sigma_min = float(sigma0), float(sigma_min)
        self.svd_cutoff = check_cutoff(svd_cutoff)

    def check_operator(self, operator):
        super().check_operator(operator)
        require_svd_for_cutoff(self, operator)

    def plan(self) -> list[tuple[float, float]]:
        """``(sigma_{k-1}, h_k)`` for each iteration: the levels the denoiser is called at."""
        out, sigma, k = [], self.sigma0, 1
        while sigma >= self.sigma_min and k <= self.num_steps:
            h = self.h0 * k / (1 + self.h0 * (k - 1))
            out.append((sigma, h))
            sigma *= 1 - self.beta * h
            k += 1
        return out

    def times(self, path) -> list:
        """The path times of the plan's levels (bisection, cached per path and plan)."""
        key = (repr(path), float(path.scale), self.h0, self.beta, self.sigma0, self.sigma_min, self.num_steps)
        cache = self.__dict__.setdefault("_times", {})
        if key not in cache:
            cache[key] = [path.snap(time_at_level(path, sigma)) for sigma, _ in self.plan()]
        return cache[key]

    def sample(self, prior, operator, y, rng, noise=None):
        p = self.setup(prior, operator, y, noise)
        op = p.operator
        u = 0.5 + self.sigma0 * rng.randn((y.shape[0], *prior.image_shape)).to(y)
        with torch.no_grad():
            for (sigma, h), t in zip(self.plan(), self.times(prior.path)):
                a, _ = prior.coefficients(t, y)
                r = prior.denoise(a * u, t) - u
                d = r - pinv(p, op(r), self.svd_cutoff) + pinv(p, y - op(u), self.svd_cutoff)
                gamma = sigma * math.sqrt(max((1 - self.beta * h) ** 2 - (1 - h) ** 2, 0.0))
                u = u + h * d + gamma * rng.randn(u.shape).to(u)
        return u

    def expected_nfe(self, prior):
        return {"nfe": len(self.plan()), "nfe_backward": 0}
