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

Real images (shipped settings ``configs/method/score_sde.yaml``: 30 steps, lam 0.5, ``normalize=True``,
chosen on 4 training crops with the natural_ddpm prior; ``benchmarks/method_settings_sweep.md``):
mean PSNR (dB): denoise 22.61, sr_4x 20.41, inpaint_70 21.77, inpaint_box 27.29, deblur 26.76,
colorize 16.83. It does not beat the best trivial estimate on: sr_4x 20.41 vs pinv 23.66 (normalised
lam 1, the exact replacement, gives 19.76: replacing with the *noised* measurement ``a' y + b' e``
at 30 steps leaves the high frequencies to an unconditional prior that does not match them to y);
colorize 16.83 vs grey 25.30 (colour is sampled from an over-saturated prior,
benchmarks/colorization.md). Unnormalised (the paper's form) lam 1 gave denoise 20.50 (= y), sr_4x
18.28, and lam 2 or 4 broke the other tasks (7-13 dB): one ``lam`` cannot suit ``||A||^2 = 1`` and
``1/16`` together.

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``score_sde`` does not beat the best
baseline by more than the standard error on natural_ddpm sr_4x 23.95 vs pinv 26.65; natural_rf sr_4x
24.85 vs pinv 26.65 (8 samples: 26.54, still does not). It beats it on every task run with
faces_ddpm (5 of 5 tasks), faces_rf (5 of 5 tasks).
"""
from __future__ import annotations

from typing import Optional

from ..sampling.schedules import Schedule
from .base import GuidedMethod
from .step_norm import check_normalizable, step_scale


class ScoreSDE(GuidedMethod):
    """Score-SDE replacement / projection (Song et al. 2021, App. I): a DDPM step, then
    ``x += lam A^T (a' y + b' e - A x)``.

    Args:
        num_steps: network evaluations (one per step; the paper's corrector steps are not used).
        eta: DDIM stochasticity (1 = DDPM ancestral).
        lam: step along ``A^T`` (1 = replacement when ``A A^T = I``).
        normalize: divide the step by ``||A||^2`` (operators with an SVD): ``lam = 1`` is then the
            replacement for every operator with equal singular values (4x average pooling has
            ``A A^T = I / 16``: unnormalised, ``lam = 1`` moves 1/16 of the way). Not in the paper,
            whose operators have orthonormal rows; False by default.
    """

    requires = ("linear",)

    def __init__(self, num_steps: int = 1000, eta: float = 1.0, lam: float = 1.0,
                 normalize: bool = False, schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, schedule)
        if not float(lam) > 0:
            raise ValueError(f"lam must be > 0, got {lam}")
        self.lam, self.normalize = float(lam), bool(normalize)

    def check_inputs(self, prior, operator, y, noise):
        super().check_inputs(prior, operator, y, noise)
        check_normalizable(self, operator)

    def prepare(self, p):
        return dict(scale=step_scale(self, p.operator))

    def post_step(self, x, s, p, rng):
        target = s.a_next * p.y
        if float(s.b_next) > 0:
            target = target + s.b_next * rng.randn(p.y.shape).to(x)
        return x + self.lam / p.state["scale"] * p.operator.adjoint(target - p.operator(x))
