"""Guidance with spherical Gaussian constraint (DSG), Yang, Gao, Chen, Lin, Wang & Xu 2024, ICML,
"Guidance with spherical Gaussian constraint for conditional diffusion" (arXiv:2402.03201),
Algorithm 1.

The DDPM step ``x_next = mu + c z`` puts ``x_next`` (in high dimension) on the sphere of radius
``r = sqrt(n) c`` around the step's mean ``mu``. DSG moves the step *on that sphere* towards the
steepest descent of the DPS data fit instead of adding an unbounded gradient, in our notation:

    g     = grad_{x_t} ||y - A(x0_hat(x_t))||          (per sample, through the network),
    d*    = -r g / ||g||,      d_s = c z,
    d     = d_s + w (d* - d_s),                        (w: the paper's guidance rate g_r)
    x_next = mu + r d / ||d||.

``w = 1`` is the deterministic steepest point of the sphere, ``w = 0`` a DDPM step whose noise is
normalised onto the sphere. Only the paper's spherical update is implemented (no extra DPS step). Needs a stochastic step (``c > 0``): at the last
step (``c = 0``) the update is the plain DDIM step. Units: the sphere radius is in the state's
own units; ``w`` is scale-free.

Real images (shipped settings ``configs/method/dsg.yaml``, chosen on 4 training crops with the
natural_ddpm prior; ``benchmarks/method_settings_sweep.md``): mean PSNR (dB): denoise 29.46, sr_4x
24.98, inpaint_70 27.50, inpaint_box 27.82, deblur 26.29, colorize 11.18. It does not beat the best
trivial estimate on: colorize 11.18 vs grey 25.30. Why: colorization (the spherical step follows the
gradient direction only, and the chroma drifts).

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``dsg`` does not beat the best
baseline by more than the standard error on natural_ddpm colorize 9.08 vs grey 15.57; faces_ddpm
deblur 23.64 vs y 23.28; natural_rf sr_4x 27.03 vs pinv 26.65, colorize 17.34 vs grey 15.57. It
beats it on every task run with faces_rf (5 of 5 tasks).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..sampling.schedules import Schedule
from ..sampling.steps import ddim_mean
from .base import GuidedMethod


def _unit(v):
    n = v.flatten(1).norm(dim=1).clamp_min(1e-30)
    return v / n.view(-1, *([1] * (v.dim() - 1)))


class DSG(GuidedMethod):
    """DSG (Yang et al. 2024): the DDPM step moved on its sphere of radius ``sqrt(n) c``
    towards the DPS gradient direction with guidance rate ``w``.

    Args:
        num_steps: network evaluations.
        eta: DDIM stochasticity of the step (must be > 0: the sphere has radius ``sqrt(n) c``).
        w: guidance rate ``g_r`` (default ours).
    """

    requires = ("differentiable",)
    needs_grad = True

    def __init__(self, num_steps: int = 100, eta: float = 1.0, w: float = 0.1, schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, schedule)
        if not 0 < self.eta:
            raise ValueError(f"DSG needs a stochastic step (eta > 0), got eta = {eta}")
        if not 0 <= float(w) <= 1:
            raise ValueError(f"DSG guidance rate w must be in [0, 1], got {w}")
        self.w = float(w)

    def guidance(self, s, p):
        (g,) = torch.autograd.grad(p.fit.distance(s.x0).sum(), s.x)
        p.state["direction"] = -_unit(g.detach())      # read by step() of the same iteration
        return None

    def step(self, x, x0_c, s, p, rng):
        mu = ddim_mean(x, x0_c, s.a, s.b, s.a_next, s.b_next, s.c)
        if float(s.b_next) == 0 or float(s.c) == 0:
            return mu if float(s.b_next) > 0 else x0_c
        n = x[0].numel()
        r = (n ** 0.5) * s.c
        d_s = s.c * rng.randn(x.shape).to(x)
        d = d_s + self.w * (r * p.state["direction"] - d_s)
        return mu + r * _unit(d)
