"""RePaint: inpainting using denoising diffusion probabilistic models, Lugmayr, Danelljan, Romero,
Yu, Timofte & Van Gool 2022, CVPR (arXiv:2201.09865).

Each reverse step (Algorithm 1) combines the known region diffused to ``t_next`` with the
unconditional DDPM step of the unknown region, ``x_next = m * x_next^known + (1 - m) * x_next^unknown``
with ``x_next^known ~ N(a' x0, b'^2 I)``; the resampling schedule (Sec. 4.2) jumps back ``jump``
steps by the forward transition ``q(x_t' | x_t)`` (:meth:`GuidedMethod.renoise`) and walks down
again, ``repeats`` times in all (:class:`~lit_ip.sampling.schedules.Resampling`; paper: 250 steps,
``jump = 10``, ``repeats = 10``, i.e. about 4,500 network evaluations).

Written for any linear operator with the replacement of ILVR, ``x <- x + A^+ (a' y + b' A z - A x)``
(:func:`~lit_ip.methods.projection.noised_projection`), which is the paper's masked combination exactly
for inpainting (``A^+ = A^T``, a mask). RePaint is ILVR plus the resampling schedule; the paper's
masks are noiseless (measurement noise is copied into the known pixels, scaled by ``a'``).
Units: none to convert (the path carries them).

Real images (shipped settings ``configs/method/repaint.yaml``, chosen on 4 training crops with the
natural_ddpm prior; ``benchmarks/method_settings_sweep.md``): mean PSNR (dB): denoise 20.50, sr_4x
23.88, inpaint_70 22.07, inpaint_box 26.02, deblur 20.18, colorize 24.23. It does not beat the best
trivial estimate on: denoise 20.50 vs measurement 20.50; deblur 20.18 vs measurement 25.80; colorize
24.23 vs grey 25.30. Why: denoising returns y; deblurring copies amplified noise as ILVR;
colorization is closest to grey of these (24.2 dB) with its resampling.

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``repaint`` does not beat the best
baseline by more than the standard error on natural_ddpm denoise 20.44 vs pinv 20.44, deblur 20.54
vs y 28.27, colorize 14.57 vs grey 15.57; faces_ddpm denoise 20.00 vs pinv 20.00, deblur 20.16 vs y
23.28; natural_rf denoise 20.44 vs pinv 20.44, sr_4x 26.76 vs pinv 26.65 (8 samples: 27.41, beats
it), deblur 20.42 vs y 28.27; faces_rf denoise 20.00 vs pinv 20.00, deblur 20.09 vs y 23.28.
"""
from __future__ import annotations

from typing import Optional

from ..sampling.schedules import Resampling, Schedule, UniformTime
from .ilvr import ILVR


class RePaint(ILVR):
    """RePaint (Lugmayr et al. 2022): replacement of the known part after every DDPM step, on the
    resampling schedule ``Resampling(UniformTime(), jump, repeats)`` (ignored when ``schedule`` is
    given). Network evaluations: ``num_steps + (repeats - 1) * jump * #{jump points}``.

    Args:
        num_steps: steps of the base grid (paper: 250).
        eta: DDIM stochasticity (1 = the paper's DDPM step).
        jump, repeats: the resampling schedule (paper: 10 and 10).
        svd_cutoff: truncated ``A^+`` for SVD operators (as :class:`~lit_ip.methods.ilvr.ILVR`).
    """

    def __init__(self, num_steps: int = 250, eta: float = 1.0, jump: int = 10, repeats: int = 10,
                 svd_cutoff: float = 0.0, schedule: Optional[Schedule] = None):
        self.jump, self.repeats = int(jump), int(repeats)
        super().__init__(num_steps, eta, 1.0, svd_cutoff, schedule)

    def default_schedule(self):
        return Resampling(UniformTime(), self.jump, self.repeats)

    def prepare(self, p):
        return dict(refine_steps=len(self.pairs(p.prior)))   # every step is refined
