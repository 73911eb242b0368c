"""ILVR: conditioning method for denoising diffusion probabilistic models, Choi, Kim, Jeong, Gwon &
Yoon 2021, ICCV (arXiv:2108.02938), generalised to any linear operator with a pseudo-inverse as in
Daras et al. 2024 ("A survey on diffusion models for inverse problems", arXiv:2410.00083, Eq. 3.7).

ILVR (Algorithm 1) refines every unconditional step by the low-pass filter ``phi_N`` (down- then
up-sampling) of a noised reference: ``x_next <- x'_next + phi_N(y_next) - phi_N(x'_next)``, with
``y_next ~ q(y_next | y)`` the reference diffused to the next time. With ``phi = A^+ A`` and the
reference ``A^+ y``, in our notation (``x_t = a x0 + b eps``, ``a', b'`` at ``t_next``):

    x_next <- x'_next + A^+ (a' y + b' A z - A x'_next),        z ~ N(0, I) (an image),

so ``A x_next = a' y + b' A z`` is a draw of ``A x_t`` given ``A x0 = y`` under the forward process
(at the clean end ``A x = y`` exactly). For super-resolution by average pooling this is the paper's
filter ``phi_N`` exactly. Units: the paper's ``[-1, 1]`` images enter only through the path, so
nothing is rescaled here.

The paper refines only on a "conditioning range" of the noisiest steps (``cond_fraction``; the
paper's ``t >= 0`` = 1.0 is the default). It is a method for noiseless references: measurement
noise is copied into the range of ``A^+`` (scaled by ``a'``).

Real images (shipped settings ``configs/method/ilvr.yaml``, chosen on 4 training crops with the
natural_ddpm prior; ``benchmarks/method_settings_sweep.md``): mean PSNR (dB): denoise 27.59, sr_4x
24.41, inpaint_70 21.87, inpaint_box 25.93, deblur 24.92, colorize 16.61. It does not beat the best
trivial estimate on: deblur 24.92 vs measurement 25.80; colorize 16.61 vs grey 25.30. Why: the
truncated ``A^+`` still copies the measurement noise ``sigma_y / s`` of singular values down to the
cutoff into deblurring; colour as Score-SDE.

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``ilvr`` does not beat the best
baseline by more than the standard error on natural_ddpm sr_4x 26.95 vs pinv 26.65 (8 samples:
28.31, beats it), deblur 26.92 vs y 28.27, colorize 15.30 vs grey 15.57; natural_rf sr_4x 26.53 vs
pinv 26.65 (8 samples: 27.93, beats it), deblur 22.88 vs y 28.27; faces_rf deblur 21.53 vs y 23.28.
It beats it on every task run with faces_ddpm (5 of 5 tasks).
"""
from __future__ import annotations

from typing import Optional

from ..sampling.schedules import Schedule
from .base import GuidedMethod
from .projection import check_cutoff, noised_projection, require_svd_for_cutoff


class ILVR(GuidedMethod):
    """ILVR (Choi et al. 2021, Algorithm 1) with ``phi = A^+ A``: DDPM step, then
    :func:`noised_projection` on the first ``cond_fraction`` of the steps.

    Args:
        num_steps: network evaluations (paper: 1000 DDPM steps).
        eta: DDIM stochasticity (1 = the paper's DDPM ancestral step).
        cond_fraction: fraction of the steps (noisiest first) that are refined (paper: 1.0; its
            "conditioning range" ablation stops earlier for more variety).
        svd_cutoff: SVD operators only: singular values below it count as null space (a truncated
            ``A^+``; noisy blur needs it, as DDNM+); 0 = the exact pseudo-inverse.
    """

    requires = ("linear",)

    def __init__(self, num_steps: int = 1000, eta: float = 1.0, cond_fraction: float = 1.0,
                 svd_cutoff: float = 0.0, schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, schedule)
        if not 0 <= float(cond_fraction) <= 1:
            raise ValueError(f"cond_fraction must be in [0, 1], got {cond_fraction}")
        self.cond_fraction = float(cond_fraction)
        self.svd_cutoff = check_cutoff(svd_cutoff)

    def check_operator(self, operator):
        super().check_operator(operator)
        require_svd_for_cutoff(self, operator)

    def prepare(self, p):
        n = sum(1 for t, t_next in self.pairs(p.prior) if t_next is None or float(t_next) < float(t))
        return dict(refine_steps=round(self.cond_fraction * n))

    def post_step(self, x, s, p, rng):
        if s.index >= p.state["refine_steps"]:
            return x
        return noised_projection(x, s.a_next, s.b_next, p, rng, self.svd_cutoff)
