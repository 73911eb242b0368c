"""Diffusion posterior sampling for general noisy inverse problems (DPS), Chung, Kim, Mccann,
Klasky & Ye 2023, ICLR (arXiv:2209.14687), Algorithms 1 (Gaussian) and 2 (Poisson).

After the unconditional step, DPS moves the state down the gradient of the data-fit
residual at the Tweedie estimate (Alg. 1, line 7):

    x_{i-1} = x'_{i-1} - zeta_i * grad_{x_i} ||y - A(x0_hat(x_i))||^2,   zeta_i = zeta' / ||y - A(x0_hat)||,

which equals ``x'_{i-1} - 2 zeta' grad ||y - A(x0_hat)||`` (the non-squared norm, as in the
authors' code; the factor 2 is absorbed in ``zeta``). With Poisson noise the norm is the paper's
weighted ``||y - A(x0_hat)||_Lambda``, ``Lambda_jj = 1 / (2 y_j)`` (Algorithm 2; the data fit's
:meth:`~lit_ip.methods.likelihood.DataFit.distance`). The norm is per sample (the authors' code takes
it over the whole batch, which couples samples).

Measured on real images (benchmarks/sweep_methods.md: natural_ddpm, 4 training crops, shipped
settings of configs/method/dps.yaml, 30 steps, posterior mean of 4 samples, PSNR dB): beats the
trivial estimate on denoise (28.2 vs 20.3), sr_4x (23.2 vs 22.2, less than the standard error),
inpainting and deblurring (27.1 vs 25.1 for y), not on colorization (15.6 vs 24.4 for the luminance
image; the prior samples colours 2.2x as saturated as the crops', benchmarks/colorization.md). Every
registry method loses to the luminance image on these crops except DiffPIR (24.3, a tie).

On the flow prior the shipped zeta = 2 is too large (benchmarks/method_settings_sweep.md round 7, 4
training crops, one sample: natural_rf zeta 1 / 2 denoise 28.20 / 24.13, inpaint_box 27.68 / 25.17,
colorize 24.20 / 19.29), while natural_ddpm needs 2 (sr_4x 22.97 vs 19.74 at zeta 1); one config serves
every prior, so 2 is shipped and DPS loses to y on faces_rf denoising (below).

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``dps`` does not beat the best
baseline by more than the standard error on natural_ddpm sr_4x 26.86 vs pinv 26.65 (8 samples:
27.92, beats it), colorize 9.94 vs grey 15.57; natural_rf sr_4x 26.66 vs pinv 26.65 (8 samples:
27.33, beats it); faces_rf denoise 18.94 vs pinv 20.00. It beats it on every task run with
faces_ddpm (5 of 5 tasks).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..sampling.schedules import Schedule
from .base import GuidedMethod


class DPS(GuidedMethod):
    """DPS (Chung et al. 2023): ``shift = -zeta * grad_{x_t} ||y - A(x0_hat)||`` (per-sample norm).

    Works for any differentiable operator (linear or not) and any noise model; the guidance
    is added after a DDIM/DDPM step on any path (eta=1: the paper's DDPM ancestral sampler).

    Args:
        num_steps: network evaluations (paper: 1000).
        eta: DDIM stochasticity (1 = DDPM ancestral).
        zeta: step size: ``shift = -zeta grad_{x_t} ||y - A(x0_hat)||`` in [0, 1] units. Converting
            Alg. 1 from [-1, 1] units (``||y' - A x0'|| = 2 ||y - A x0||``, ``grad_{x'} = grad_x / 2``,
            ``shift = shift' / 2``) gives ``zeta = zeta'`` exactly; the authors' code steps along the
            plain norm with ``scale = 2 zeta'``, i.e. ``zeta = scale / 2``. The reported setting
            (``scale = 1`` for noise, SR, inpainting) is ``zeta = 0.5`` here, the default.
    """

    requires = ("differentiable",)
    needs_grad = True

    def __init__(self, num_steps: int = 1000, eta: float = 1.0, zeta: float = 0.5,
                 schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, schedule)
        if not float(zeta) >= 0:
            raise ValueError(f"DPS step size zeta must be >= 0, got {zeta}")
        self.zeta = float(zeta)

    def guidance(self, s, p):
        (grad,) = torch.autograd.grad(p.fit.distance(s.x0).sum(), s.x)
        return -self.zeta * grad
