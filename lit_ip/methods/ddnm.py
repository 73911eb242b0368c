"""Zero-shot image restoration using denoising diffusion null-space model (DDNM, DDNM+), Wang, Yu &
Zhang 2023, ICLR (arXiv:2212.00490).

DDNM (Eq. 13) keeps the null-space part of the Tweedie estimate and replaces its range-space
part by the measurement, then takes the usual step ``p(x_{t-1} | x_t, x0_c)``:

    x0_c = x0_hat - A^+ (A x0_hat - y).

DDNM+ (Eqs. 16-19) handles noisy ``y``: ``x0_c = x0_hat - Sigma_t A^+ (A x0_hat - y)`` and the step's
noise covariance becomes ``Phi_t``, both diagonal in the SVD basis. With the step written as
``x_next = k x0_c + c_x x_t + c z`` (``k`` the coefficient of ``x0_c``, ``c`` the noise std of the
step; the paper's ``a_t`` and ``sigma_t`` for DDPM), per coordinate with singular value ``s_i``:

    lambda_i = min(1, c s_i / (k sigma_y)),     Phi_i = c^2 - (k lambda_i sigma_y / s_i)^2,

so the measurement noise carried by ``x0_c`` plus the fresh noise has exactly the variance
``c^2`` of the unconditional step (null space: ``lambda = 0``, ``Phi = c^2``). With
``sigma_y = 0`` DDNM+ reduces to DDNM. Time travel (the paper's Sec. 3.3 back-and-forth
resampling) is not included.

Measured on real images (benchmarks/sweep_methods.md: natural_ddpm, 4 training crops, shipped
settings of configs/method/ddnm.yaml / ddnm_plus.yaml, 25 steps, posterior mean of 4 samples, PSNR
dB). DDNM, the noiseless method, cannot beat the measurement on noisy denoising or deblurring by
construction: it puts y back into the range space (denoise 20.25 = y; deblur 5.3 vs 25.1, the 1e-7
singular values of the blur amplify the noise; svd_cutoff does not apply to DDNM); it beats the
pseudo-inverse on sr_4x (23.6 vs 22.2) and inpainting (22.6 / 26.5 vs 7.1 / 12.8). DDNM+ (svd_cutoff
0.1) beats the trivial estimate on denoise (28.7), sr_4x (24.0), inpainting (22.3 / 27.2), deblur
(28.4). Neither beats the luminance image on colorization (20.1 vs 24.4): the prior and the number of
samples, not the method (benchmarks/colorization.md). Held-out (benchmarks/real_images.md, 2 samples):
DDNM 20.44 on denoise = y exactly, 26.51 vs 26.65 pinv on sr_4x, 4.94 = pinv on deblur. That is the
method of its paper, not our code: Eq. 13 assumes a noise-free y (the paper's noisy method is DDNM+),
so DDNM warns when sigma > 0 instead of refusing (noisy exact-posterior tests still run it).

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``ddnm`` does not beat the best
baseline by more than the standard error on natural_ddpm denoise 20.44 vs pinv 20.44, sr_4x 26.51 vs
pinv 26.65 (8 samples: 27.22, beats it), deblur 4.94 vs y 28.27, colorize 16.16 vs grey 15.57;
faces_ddpm denoise 20.00 vs pinv 20.00, deblur 5.31 vs y 23.28; natural_rf denoise 20.44 vs pinv
20.44, sr_4x 26.23 vs pinv 26.65 (8 samples: 27.13, beats it), deblur 4.94 vs y 28.27; faces_rf
denoise 20.00 vs pinv 20.00, deblur 5.31 vs y 23.28. ``ddnm_plus`` does not beat the best baseline
by more than the standard error on natural_ddpm colorize 16.24 vs grey 15.57 (8 samples: 16.50,
still does not); natural_rf sr_4x 26.90 vs pinv 26.65 (8 samples: 28.01, beats it). It beats it on
every task run with faces_ddpm (5 of 5 tasks), faces_rf (5 of 5 tasks).
"""
from __future__ import annotations

import warnings
from typing import Optional

import torch

from ..priors.parameterization import eps_from_x0
from ..sampling.schedules import Schedule
from .base import GuidedMethod
from .spectral import gaussian_sigma


class DDNM(GuidedMethod):
    """DDNM (Wang et al. 2023, Algorithm 1): ``x0_c = x0_hat - A^+ (A x0_hat - y)``.

    Any linear operator (``A^+`` by the SVD when the operator has one, else by conjugate
    gradients). It is the noiseless method: noise in ``y`` is copied into the range space
    (use :class:`DDNMPlus` for noisy data).

    Args:
        num_steps: network evaluations (paper: 100).
        eta: DDIM stochasticity (1 = the paper's DDPM posterior step).
        svd_cutoff: DDNM+ only: singular values below it count as null space (truncated
            SVD, see :class:`~lit_ip.methods.spectral.Spectrum`); 0 = exact SVD.
    """

    requires = ("linear",)

    def __init__(self, num_steps: int = 100, eta: float = 1.0, svd_cutoff: float = 0.0,
                 schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, schedule)
        if not float(svd_cutoff) >= 0:
            raise ValueError(f"svd_cutoff must be >= 0, got {svd_cutoff}")
        self.svd_cutoff = float(svd_cutoff)

    #: DDNM (Eq. 13) assumes a noise-free y; DDNM+ (Eqs. 16-19) is the paper's method for noisy data
    noiseless = True

    def check_inputs(self, prior, operator, y, noise):
        super().check_inputs(prior, operator, y, noise)
        if self.noiseless and float(getattr(noise, "sigma", 0.0) or 0.0) > 0:
            warnings.warn(f"{self.name} is the noiseless method of Wang et al. 2023 (Eq. 13): with noise "
                          f"sigma = {float(noise.sigma):g} it copies the noise of y into the range space "
                          f"(on denoising it returns y); use DDNMPlus for noisy measurements",
                          UserWarning, stacklevel=3)

    def estimate(self, s, p):
        return s.x0 - p.operator.pinv(p.operator(s.x0) - p.y)


class DDNMPlus(DDNM):
    """DDNM+ without time travel (Wang et al. 2023, Eqs. 16-19): noise-aware range-space
    scaling ``Sigma_t`` and step noise ``Phi_t`` through the SVD.

    With noisy data the scaling needs a stochastic step (``eta > 0``): with ``c = 0`` there is
    no noise budget and the method would reduce to unconditional sampling, so it is refused.
    """

    requires = ("svd",)
    gaussian_noise = True
    noiseless = False

    def check_inputs(self, prior, operator, y, noise):
        super().check_inputs(prior, operator, y, noise)
        if gaussian_sigma(noise, self.name) > 0 and self.eta == 0:
            raise ValueError(f"{self.name} with noisy measurements needs eta > 0 (its range-space "
                             f"update is paid for by the step's noise), got eta = 0")

    def _coefficients(self, s):
        """``k`` (weight of ``x0_c`` in the step) and ``c`` (its noise std)."""
        c = s.c
        if float(s.b_next) == 0:
            return torch.ones_like(c), c
        return s.a_next - torch.sqrt((s.b_next ** 2 - c ** 2).clamp_min(0)) * s.a / s.b, c

    def _scaling(self, s, p):
        sp, sy = p.spectrum(self.svd_cutoff), p.sigma
        k, c = self._coefficients(s)
        if sy == 0:
            lam = sp.measured.to(sp.s)
        else:
            lam = torch.where(sp.measured, (c * sp.s / (k * sy)).clamp(max=1), torch.zeros_like(sp.s))
        carried = torch.where(sp.measured, k * lam * sy / sp.s.clamp_min(1e-300), torch.zeros_like(sp.s))
        return lam, (c ** 2 - carried ** 2).clamp_min(0)

    def estimate(self, s, p):
        sp = p.spectrum(self.svd_cutoff)
        lam, _ = self._scaling(s, p)
        x0b = sp.vt(s.x0)
        return sp.v(x0b - lam * (x0b - sp.ybar))

    def step(self, x, x0_c, s, p, rng):
        sp = p.spectrum(self.svd_cutoff)
        if float(s.b_next) == 0:
            return x0_c
        _, phi = self._scaling(s, p)
        _, c = self._coefficients(s)
        mean = s.a_next * x0_c + torch.sqrt((s.b_next ** 2 - c ** 2).clamp_min(0)) * eps_from_x0(x0_c, x, s.a, s.b)
        if float(c) == 0:
            return mean
        return mean + sp.v(phi.sqrt() * sp.vt(rng.randn(x.shape).to(x)))
