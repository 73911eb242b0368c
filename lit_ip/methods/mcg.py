"""Improving diffusion models for inverse problems using manifold constraints (MCG), Chung, Sim,
Ryu & Ye 2022, NeurIPS (arXiv:2206.00941), Algorithm 1.

After the unconditional DDPM step ``x'_next``, MCG takes a gradient step on the data fit at the
Tweedie estimate (the manifold-constrained gradient; Eq. 14, ``W = I``) and then projects onto the
measurement set diffused to ``t_next`` (Eq. 15), in our notation (``x_t = a x0 + b eps``):

    x''_next = x'_next - alpha grad_{x_t} ||y - A x0_hat(x_t)||^2,   alpha = alpha' / ||y - A x0_hat||,
    x_next   = x''_next + A^+ (a' y + b' A z - A x''_next)      (z ~ N(0, I); A^+ = A^T for the
                                                                  paper's masks and colorization).

``alpha' / ||r|| grad ||r||^2 = 2 alpha' grad ||r||``: the gradient is DPS's
(:class:`~lit_ip.methods.dps.DPS`, step ``zeta = 2 alpha'``), and the projection is ILVR's
(:func:`~lit_ip.methods.projection.noised_projection`, the paper's ``A^T`` replacement generalised with
``A^+``). The projection copies measurement noise into the range of ``A^+`` (Algorithm 1 is written for
noiseless data); ``project=False`` drops it, which leaves DPS. Units: ``zeta`` as DPS's, in [0, 1] images (the code's ``[-1, 1]`` step halves).

Real images (shipped settings ``configs/method/mcg.yaml``, chosen on 4 training crops with the
natural_ddpm prior; ``benchmarks/method_settings_sweep.md``): mean PSNR (dB): denoise 20.50, sr_4x
23.14, inpaint_70 26.17, inpaint_box 26.96, deblur 19.86, colorize 15.43. It does not beat the best
trivial estimate on: denoise 20.50 vs measurement 20.50; sr_4x 23.14 vs pinv 23.66; deblur 19.86 vs
measurement 25.80; colorize 15.43 vs grey 25.30. Why: the projection copies noise into deblurring
and the identity (denoising returns y); colour as Score-SDE.

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``mcg`` does not beat the best
baseline by more than the standard error on natural_ddpm denoise 20.44 vs pinv 20.44, sr_4x 26.45 vs
pinv 26.65 (8 samples: 27.27, beats it), deblur 20.35 vs y 28.27, colorize 14.54 vs grey 15.57;
faces_ddpm denoise 20.00 vs pinv 20.00, deblur 20.09 vs y 23.28; natural_rf denoise 20.44 vs pinv
20.44, sr_4x 26.15 vs pinv 26.65 (8 samples: 27.17, beats it), deblur 20.21 vs y 28.27; faces_rf
denoise 20.00 vs pinv 20.00, deblur 20.00 vs y 23.28.
"""
from __future__ import annotations

from typing import Optional

from ..sampling.schedules import Schedule
from .dps import DPS
from .projection import check_cutoff, noised_projection, require_svd_for_cutoff


class MCG(DPS):
    """MCG (Chung et al. 2022): DPS's gradient step, then the noised projection onto ``A x = y``.

    Args:
        num_steps: network evaluations (paper: 1000).
        eta: DDIM stochasticity (1 = the paper's DDPM step).
        zeta: gradient step in [0, 1] image units (``2 alpha'``; DPS's units).
        project: apply the projection (the paper's Algorithm 1: yes).
        svd_cutoff: truncated ``A^+`` for SVD operators (as :class:`~lit_ip.methods.ilvr.ILVR`).
    """

    requires = ("linear", "differentiable")

    def __init__(self, num_steps: int = 1000, eta: float = 1.0, zeta: float = 0.5, project: bool = True,
                 svd_cutoff: float = 0.0, schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, zeta, schedule)
        self.project = bool(project)
        self.svd_cutoff = check_cutoff(svd_cutoff)

    def check_operator(self, operator):
        super().check_operator(operator)
        require_svd_for_cutoff(self, operator)

    def post_step(self, x, s, p, rng):
        return noised_projection(x, s.a_next, s.b_next, p, rng, self.svd_cutoff) if self.project else x
