"""Pseudoinverse-guided diffusion models for inverse problems (PiGDM), Song, Vahdat, Mardani &
Kautz 2023, ICLR (OpenReview).

``p(x0 | x_t)`` is approximated by ``N(x0_hat, r_t^2 I)`` (Eq. 4), so ``p(y | x_t) ~=
N(H x0_hat, r_t^2 H H^T + sigma_y^2 I)`` (Eq. 6) and the guidance is the vector-Jacobian product

    noisy (Eq. 7):      g = r_t^2 [(y - H x0_hat)^T (r_t^2 H H^T + sigma_y^2 I)^{-1} H  d x0_hat/d x_t]^T
    noiseless (Eq. 9):  g =       [(h_dag(y) - h_dag(h(x0_hat)))^T                d x0_hat/d x_t]^T

(``g = r_t^2 * grad log p(y | x_t)``; in the noiseless form r_t^2 cancels, Eq. 11), added after
the unconditional DDIM step (Eq. 10). The paper writes Eq. 10 for the VE state ``u = x_t / a``:
``u_s = f(u_t) + r_t^2 grad_u log p(y | u_t)``. With ``grad_u = a_t grad_{x_t}`` and ``x_s = a_s u_s``
it reads, for our state (VP: ``a = sqrt(alpha_bar)``; the authors' code has the same weight),

    x_s = DDIM(x_t, x0_hat) + a_s a_t g        (``form="eq10"``).

That shift does not shrink with the step: it is a per-step heuristic tuned for the paper's
100-step VP/VE samplers, not a discretisation of an ODE. On a flow path the step-length-aware form
is the posterior-score substitution (the same Gaussian likelihood inside the ODE, as the OT-ODE of
Pokle et al. 2023, "Training-free linear image inverses via flows", arXiv:2310.04432, does with it):

    x0_c = x0_hat + (b^2 / a) grad log p(y | x_t),   x_s = DDIM(x_t, x0_c)      (``form="score"``),

whose shift ``(a_s - b_s a / b) (b^2 / a) grad log p`` vanishes with the step length. ``form="auto"``
(the default) is ``"eq10"`` on diffusion paths (VP, VE) and ``"score"`` on flow paths.

``r_t^2 = data_var * sigma^2 / (data_var + sigma^2)`` with ``sigma = b / a`` (App. A.3: the
posterior variance of a Gaussian with the data's variance; ``1 - alpha_bar_t`` for VP in
native units, and the OT-ODE choice of Pokle et al. 2023 on rectified flow).

Measured on real images (benchmarks/sweep_methods.md: natural_ddpm, 4 training crops, shipped
settings of configs/method/pigdm.yaml, 25 steps, posterior mean of 4 samples, PSNR dB): beats the
trivial estimate on denoise (29.4 vs 20.3), sr_4x (24.3 vs 22.2), inpainting (25.2 / 29.4 vs 7.1 /
12.8), deblur (28.6 vs 25.1); not colorization (20.7 vs 24.4 for the luminance image, 4 samples;
the prior's over-saturated colours and too few samples: the mean of 8 gives 24.75 vs 24.41,
benchmarks/colorization.md). On the flow prior the shipped form is ``"eq10"``, not ``"auto"``
(= ``"score"`` there): benchmarks/method_settings_sweep.md round 6, natural_rf, the same 4 training
crops, 25 steps, one sample, PSNR dB for score / eq10 / best trivial estimate: denoise 21.88 / 29.71 /
20.5, sr_4x 19.38 / 24.62 / 23.66, inpaint_70 19.86 / 26.77 / 9.7, inpaint_box 25.35 / 29.84 / 17.44,
deblur 27.03 / 29.11 / 25.8, colorize 19.53 / 22.96 / 25.3. The score form's correction carries
``b^2 / a``, which grows without bound towards the flow's noise end (``a = 1 - t -> 0``); with eta = 0
it fails outright (sr_4x 9.6 dB on those crops). Why the step-length-aware form loses at 25 steps
is not settled; ``form="score"`` stays available.

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``pigdm`` does not beat the best
baseline by more than the standard error on natural_ddpm colorize 16.02 vs grey 15.57 (8 samples:
16.56, still does not). It beats it on every task run with faces_ddpm (5 of 5 tasks), natural_rf (6
of 6 tasks), faces_rf (5 of 5 tasks).
"""
from __future__ import annotations

from typing import Optional

from ..sampling.schedules import Schedule
from .base import GuidedMethod
from .spectral import gaussian_sigma, vjp


def tweedie_variance(data_var: float, a, b) -> float:
    """PiGDM's ``r_t^2 = v sigma^2 / (v + sigma^2)``, ``sigma = b / a`` (``v`` at ``a = 0``; App. A.3): the
    posterior variance of ``x0`` given ``x_t`` for Gaussian data of variance ``v``."""
    v, a, b = float(data_var), float(a), float(b)
    return v * b ** 2 / (v * a ** 2 + b ** 2)


class PiGDM(GuidedMethod):
    """PiGDM (Song et al. 2023, Algorithm 1, Eqs. 7-11).

    Noiseless measurements (sigma_y = 0) use ``h_dagger`` (Eq. 9), so non-linear operators that
    define one (JPEG, quantisation) work. Noisy ones use Eq. 7, which needs a linear operator:
    the inverse is taken through the SVD when the operator has one, by conjugate gradients
    otherwise.

    Args:
        num_steps: network evaluations (paper: 100).
        eta: DDIM stochasticity (paper: 0 to 1).
        cg_iters, cg_tol: conjugate-gradient budget for operators without an SVD.
        form: ``"eq10"`` (the paper's additive step, weight ``a_s a_t``), ``"score"`` (posterior-score
            substitution, step-length aware) or ``"auto"`` (eq10 on VP/VE paths, score on flows).
    """

    FORMS = ("auto", "eq10", "score")

    requires = ("h_dagger",)
    needs_grad = True
    gaussian_noise = True

    def __init__(self, num_steps: int = 100, eta: float = 1.0, cg_iters: int = 50, cg_tol: float = 1e-10,
                 form: str = "auto", schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, schedule)
        if form not in self.FORMS:
            raise ValueError(f"PiGDM form must be one of {self.FORMS}, got {form!r}")
        self.cg_iters, self.cg_tol, self.form = int(cg_iters), float(cg_tol), form

    def resolved_form(self, prior) -> str:
        """``form`` with ``"auto"`` resolved: Eq. 10 on diffusion paths, the score form on flows."""
        if self.form != "auto":
            return self.form
        return "score" if prior.path.kind == "rf" else "eq10"

    def check_inputs(self, prior, operator, y, noise):
        super().check_inputs(prior, operator, y, noise)
        if gaussian_sigma(noise, self.name) > 0 and not operator.linear:
            raise ValueError(f"{self.name} with noisy measurements (Eq. 7) needs a linear operator, "
                             f"but {operator.describe()} is not; only noiseless data can use h_dagger")

    def prepare(self, p):
        state = dict(form=self.resolved_form(p.prior))
        if p.sigma == 0:
            state["hy"] = p.operator.h_dagger(p.y)
        return state

    def r2(self, s, prior) -> float:
        return tweedie_variance(prior.data_var, s.a, s.b)

    def estimate(self, s, p):
        if p.state["form"] != "score" or not self.informative(p.prior, s.t):
            return s.x0
        return s.x0.detach() + s.b ** 2 / s.a * self.scaled_score(s, p) / self.r2(s, p.prior)

    def guidance(self, s, p):
        if p.state["form"] != "eq10":
            return None
        return s.a_next * s.a * self.scaled_score(s, p)

    def scaled_score(self, s, p):
        """``g = r_t^2 grad_{x_t} log p(y | x_t)`` (Eqs. 7, 9)."""
        op, x0 = p.operator, s.x0.detach()
        if p.sigma == 0:
            g = vjp(s.x0, s.x, p.state["hy"] - op.h_dagger(op(x0)))
        else:
            r2 = self.r2(s, p.prior)
            w = op.gram_solve(p.y - op(x0), r2, p.sigma ** 2, self.cg_iters, self.cg_tol)
            g = r2 * vjp(s.x0, s.x, op.adjoint(w))
        return g

    def expected_nfe(self, prior):
        n = super().expected_nfe(prior)
        if self.resolved_form(prior) == "score":     # no Jacobian at steps where a = 0
            n["nfe_backward"] = sum(1 for t, t_next in self.pairs(prior)
                                    if (t_next is None or float(t_next) < float(t)) and self.informative(prior, t))
        return n
