"""Manifold preserving guided diffusion (MPGD), He, Murata, Lai, Takida, Uesaka, Kim, Liao, Mitsufuji,
Kolter, Salakhutdinov & Ermon 2024, ICLR (arXiv:2311.16424), pixel-space version (Algorithm 1,
"MPGD w/o projection"; the survey's Eqs. 3.80-3.82).

MPGD steps on the Tweedie estimate itself instead of the noisy state, so no gradient passes
through the network (the gradient of the data fit lives on the tangent space of the clean-data
manifold at ``x0_hat``), then takes the unconditional DDIM step with the corrected estimate:

    x0_c = x0_hat - c_t grad_{x0} ||y - A(x0)||^2 |_{x0_hat},     x_next = DDIM(x_t, x0_c),

repeated ``inner_steps`` times (the paper's optional multi-step variant). Step schedule
``c_t = lr * a'`` (ours: the step grows with the signal weight of the next time, so the early,
uninformative estimates move little). Works for any differentiable operator and any
noise model (the squared residual is unweighted). Units: ``||y - A x||^2`` is 4 times larger on
[-1, 1] images, its gradient in ``x0'`` 2 times larger, and a move of ``x0'`` is twice one of ``x0``,
so ``c_t`` is the same number in both units (``tests/test_paper_steps_breadth.py``; an earlier version of
this note said ``lr = 2 c``, which was wrong: the code never used that conversion).

Real images (shipped settings ``configs/method/mpgd.yaml``: 30 steps, lr 0.5, ``normalize=True``,
chosen on 4 training crops with the natural_ddpm prior; ``benchmarks/method_settings_sweep.md``):
mean PSNR (dB): denoise 20.50, sr_4x 23.53, inpaint_70 16.30, inpaint_box 24.81, deblur 26.93,
colorize 17.12. It does not beat the best trivial estimate on: denoise 20.50 vs measurement 20.50
(lr 0.5 at ``a' = 1`` is the exact projection, which returns y; lr 0.25 gives 22.35 but loses
deblurring, 25.01 vs 25.8); sr_4x 23.53 vs pinv 23.66 (the projection keeps y's noise in the range
space); colorize 17.12 vs grey 25.30 (the prior's colours, benchmarks/colorization.md). The
unnormalised step (the paper's form) with lr 0.5 gave sr_4x 11.47: the gradient of the data fit of
4x pooling is 1/16 of a projection, and a larger lr breaks the other tasks (lr 2: 9.6 dB denoising).

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``mpgd`` does not beat the best
baseline by more than the standard error on natural_ddpm denoise 20.44 vs pinv 20.44, sr_4x 26.55 vs
pinv 26.65 (8 samples: 27.16, beats it), colorize 15.85 vs grey 15.57; faces_ddpm denoise 20.00 vs
pinv 20.00, deblur 23.38 vs y 23.28; natural_rf denoise 20.44 vs pinv 20.44, sr_4x 25.98 vs pinv
26.65 (8 samples: 26.97, beats it); faces_rf denoise 20.00 vs pinv 20.00.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..sampling.schedules import Schedule
from .base import GuidedMethod
from .step_norm import check_normalizable, step_scale


class MPGD(GuidedMethod):
    """MPGD pixel-space (He et al. 2024): ``x0_c = x0_hat - lr a' grad ||y - A(x0)||^2`` (no network
    backward), then DDIM.

    Args:
        num_steps: network evaluations.
        eta: DDIM stochasticity.
        lr: gradient step in [0, 1] units (see above).
        inner_steps: gradient steps per network evaluation.
        normalize: divide the step by ``||A||^2`` (largest squared singular value; operators with an
            SVD), so that ``lr = 0.5`` at ``a' = 1`` is the exact projection along the top singular
            directions for every operator. Not in the paper (False, its default), which tunes ``c_t``
            per task: without it the same ``lr`` is a full projection for the identity or a mask
            and 1/16 of one for 4x average pooling (``||A||^2 = 1/16``).
    """

    requires = ("differentiable",)

    def __init__(self, num_steps: int = 50, eta: float = 1.0, lr: float = 1.0, inner_steps: int = 1,
                 normalize: bool = False, schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, schedule)
        if not float(lr) >= 0 or int(inner_steps) < 1:
            raise ValueError(f"MPGD needs lr >= 0 and inner_steps >= 1, got {lr}, {inner_steps}")
        self.lr, self.inner_steps, self.normalize = float(lr), int(inner_steps), bool(normalize)

    def check_inputs(self, prior, operator, y, noise):
        super().check_inputs(prior, operator, y, noise)
        check_normalizable(self, operator)

    def prepare(self, p):
        return dict(scale=step_scale(self, p.operator))

    def estimate(self, s, p):
        x0 = s.x0.detach()
        step = self.lr * s.a_next / p.state["scale"]
        with torch.enable_grad():
            for _ in range(self.inner_steps):
                x = x0.requires_grad_(True)
                (g,) = torch.autograd.grad((p.fit.residual(x) ** 2).sum(), x)
                x0 = (x - step * g).detach()
        return x0
