"""DDNM with time travel (Wang, Yu & Zhang 2023, "Zero-shot image restoration using denoising
diffusion null-space model", ICLR, arXiv:2212.00490, Sec. 3.3 and Algorithm 3).

The range-null-space estimate of DDNM / DDNM+ (:mod:`lit_ip.methods.ddnm`; with ``sigma_y = 0``
DDNM+ is DDNM)

    x0_c = x0_hat - Sigma_t A^+ (A x0_hat - y)

on a schedule that travels back in time: after ``jump`` steps down (the paper's travel length
``l``) the state is diffused ``jump`` steps up by ``q(x_{t+l} | x_t)`` (:meth:`GuidedMethod.renoise`)
and the steps are redone, ``repeats`` times in all (the paper's ``r + 1``), so the null space is
re-harmonised with the range space (:class:`~lit_ip.sampling.schedules.Resampling`, the same walk
as RePaint). The paper's Algorithm 3 also has a travel interval ``s``; here every ``jump``-th step
is a travel point (interval = length). Units: none to convert.

Real images (shipped settings ``configs/method/ddnm_time_travel.yaml``, chosen on 4 training crops
with the natural_ddpm prior; ``benchmarks/method_settings_sweep.md``): mean PSNR (dB): denoise
29.11, sr_4x 24.77, inpaint_70 22.03, inpaint_box 27.77, deblur 28.02, colorize 21.97. It does not
beat the best trivial estimate on: colorize 21.97 vs grey 25.30. Why: colorization: the sampled
chroma loses to grey (DDNM+ alone, same budget: 17.5 dB).

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``ddnm_time_travel`` does not beat the
best baseline by more than the standard error on natural_ddpm colorize 14.30 vs grey 15.57. It beats
it on every task run with faces_ddpm (5 of 5 tasks), natural_rf (6 of 6 tasks), faces_rf (5 of 5
tasks).
"""
from __future__ import annotations

from typing import Optional

from ..sampling.schedules import Resampling, Schedule, UniformTime
from .ddnm import DDNMPlus


class DDNMTimeTravel(DDNMPlus):
    """DDNM+ on ``Resampling(UniformTime(), jump, repeats)`` (ignored when ``schedule`` is given).

    Args:
        num_steps: steps of the base grid (paper: 100).
        eta: DDIM stochasticity (1 = DDPM; noisy data needs eta > 0, as DDNM+).
        svd_cutoff: singular values below it count as null space (as DDNM+).
        jump, repeats: travel length and number of passes (ours: 5 and 2; the paper ablates both).
    """

    def __init__(self, num_steps: int = 100, eta: float = 1.0, svd_cutoff: float = 0.0, jump: int = 5,
                 repeats: int = 2, schedule: Optional[Schedule] = None):
        self.jump, self.repeats = int(jump), int(repeats)
        super().__init__(num_steps, eta, svd_cutoff, schedule)

    def default_schedule(self):
        return Resampling(UniformTime(), self.jump, self.repeats)
