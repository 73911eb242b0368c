"""Decomposed diffusion sampler (DDS), Chung, Lee & Ye 2024, ICLR, "Decomposed diffusion sampler
for accelerating large-scale inverse problems" (arXiv:2303.05754), Algorithm 1 / Eq. 15.

DDS replaces DPS's gradient through the network by a few conjugate-gradient steps on the Tweedie
estimate (no backward pass), then takes the DDIM step with the corrected estimate:

    x0_c = argmin_{x in x0_hat + K_M} ||y - A x||^2 + rho ||x - x0_hat||^2,

``K_M`` the Krylov subspace of ``M`` CG iterations on ``(A^T A + rho I) d = A^T (y - A x0_hat)`` from
``d = 0`` (:meth:`LinearOperator.prox_l2 <lit_ip.operators.base.LinearOperator.prox_l2>` by CG).
The truncation is DDS's regulariser: ``M`` small keeps ``x0_c`` near the tangent space of the data
manifold at ``x0_hat`` (the paper's Prop. 2). The paper writes the weight as ``gamma`` on the data
term: ``rho = 1 / gamma``. ``cg_iters=None`` uses the
operator's exact proximal step instead (closed form for SVD operators): then DDS is DiffPIR's
proximal step with a constant weight. Units: ``rho`` is scale-free (both terms scale alike from
[-1, 1] to [0, 1] images).

Real images (shipped settings ``configs/method/dds.yaml``, chosen on 4 training crops with the
natural_ddpm prior; ``benchmarks/method_settings_sweep.md``): mean PSNR (dB): denoise 20.53, sr_4x
23.83, inpaint_70 21.30, inpaint_box 25.78, deblur 26.64, colorize 17.61. It does not beat the best
trivial estimate on: colorize 17.61 vs grey 25.30. Why: colour comes from an over-saturated prior and one
sample has the crop's plus the sample's chroma error (benchmarks/colorization.md); denoising beats y by only 0.03
dB (``rho = 0.05`` trusts the noisy y).

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``dds`` does not beat the best
baseline by more than the standard error on natural_ddpm sr_4x 26.85 vs pinv 26.65 (8 samples:
27.53, beats it), deblur 28.52 vs y 28.27, colorize 15.90 vs grey 15.57; natural_rf sr_4x 26.25 vs
pinv 26.65 (8 samples: 27.22, beats it), deblur 27.33 vs y 28.27. It beats it on every task run with
faces_ddpm (5 of 5 tasks), faces_rf (5 of 5 tasks).
"""
from __future__ import annotations

from typing import Optional

from ..operators.base import LinearOperator
from ..sampling.schedules import Schedule
from .base import GuidedMethod


class DDS(GuidedMethod):
    """DDS (Chung et al. 2024): ``x0_c`` = ``cg_iters`` CG steps of the data proximal problem from
    ``x0_hat``, then DDIM with ``eta``.

    Args:
        num_steps: network evaluations.
        eta: DDIM stochasticity.
        rho: weight of ``||x - x0_hat||^2`` (``1 / gamma``; 0 = projection-like).
        cg_iters: CG iterations ``M`` (a few in the paper); None = the exact proximal step.

    Defaults are ours; shipped settings: ``configs/method/dds.yaml``.
    """

    requires = ("linear",)

    def __init__(self, num_steps: int = 100, eta: float = 0.85, rho: float = 0.0,
                 cg_iters: Optional[int] = 5, schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, schedule)
        if not float(rho) >= 0:
            raise ValueError(f"rho must be >= 0, got {rho}")
        if cg_iters is not None and int(cg_iters) < 1:
            raise ValueError(f"cg_iters must be >= 1 or None, got {cg_iters}")
        self.rho = float(rho)
        self.cg_iters = None if cg_iters is None else int(cg_iters)

    def estimate(self, s, p):
        x0 = s.x0.detach()
        if self.cg_iters is None:
            return p.operator.prox_l2(x0, p.y, self.rho)
        return LinearOperator.prox_l2(p.operator, x0, p.y, self.rho, iters=self.cg_iters, tol=0.0)
