"""Score-SDE conditioning by projection (Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole 2021,
"Score-based generative modeling through stochastic differential equations", ICLR,
arXiv:2011.13456, Sec. 5 and App. I.2-I.4: imputation and colorization), in the form of Daras et
al. 2024 ("A survey on diffusion models for inverse problems", arXiv:2410.00083, Eq. 3.6).

After each unconditional step the state is moved along the "lifting" ``A^T`` of the error to the
*noised* measurement ``y_next = a' y + b' e`` (``e ~ N(0, I_m)``, the paper's forward-diffused
known part), in our notation (``x_t = a x0 + b eps``, ``a', b'`` at ``t_next``):

    x_next <- x'_next + lam A^T (a' y + b' e - A x'_next).

For an operator with orthonormal rows (``A A^T = I``: inpainting, the paper's orthogonally
decoupled colorization) and ``lam = 1`` this is the paper's replacement of the known coordinates
(a projection; exact ``A x = y`` at the clean end). For other operators it is one gradient step of
size ``lam`` (not a projection; ``lam < 2 / ||A||^2`` is stable): :class:`~lit_ip.methods.ilvr.ILVR`
pre-conditions it with ``A^+`` instead. The paper samples with its predictor-corrector VE/VP
solvers; here the step is the path's DDPM/DDIM step (``eta``). A method for noiseless data: noise
in ``y`` is copied into the range of ``A^T``. Units: nothing is rescaled (the noise ``b' e`` is in
the prior's [0, 1] units through ``b'``).

Real images (shipped settings ``configs/method/score_sde.yaml``, chosen on 4 training crops with the
natural_ddpm prior; ``benchmarks/method_settings_sweep.md``): mean PSNR (dB): denoise 20.50, sr_4x
18.28, inpaint_70 22.98, inpaint_box 25.91, deblur 27.47, colorize 17.75. It does not beat the best
trivial estimate on: denoise 20.50 vs measurement 20.50; sr_4x 18.28 vs pinv 23.66; colorize 17.75
vs grey 25.30. Why: denoising returns y itself (the identity's replacement), the ``A^T`` step under-
projects ``A A^T = I/16`` of 4x pooling, and colour is sampled, not inferred, so grey wins on
colorization.
"""
from __future__ import annotations

from typing import Optional

from ..sampling.schedules import Schedule
from .base import GuidedMethod


class ScoreSDE(GuidedMethod):
    """Score-SDE replacement / projection (Song et al. 2021, App. I): a DDPM step, then
    ``x += lam A^T (a' y + b' e - A x)``.

    Args:
        num_steps: network evaluations (one per step; the paper's corrector steps are not used).
        eta: DDIM stochasticity (1 = DDPM ancestral).
        lam: step along ``A^T`` (1 = replacement when ``A A^T = I``).
    """

    requires = ("linear",)

    def __init__(self, num_steps: int = 1000, eta: float = 1.0, lam: float = 1.0,
                 schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, schedule)
        if not float(lam) > 0:
            raise ValueError(f"lam must be > 0, got {lam}")
        self.lam = float(lam)

    def post_step(self, x, s, p, rng):
        target = s.a_next * p.y
        if float(s.b_next) > 0:
            target = target + s.b_next * rng.randn(p.y.shape).to(x)
        return x + self.lam * p.operator.adjoint(target - p.operator(x))
