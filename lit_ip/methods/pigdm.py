"""Pseudoinverse-guided diffusion models for inverse problems (PiGDM), Song, Vahdat, Mardani &
Kautz 2023, ICLR (OpenReview).

``p(x0 | x_t)`` is approximated by ``N(x0_hat, r_t^2 I)`` (Eq. 4), so ``p(y | x_t) ~=
N(H x0_hat, r_t^2 H H^T + sigma_y^2 I)`` (Eq. 6) and the guidance is the vector-Jacobian product

    noisy (Eq. 7):      g = r_t^2 [(y - H x0_hat)^T (r_t^2 H H^T + sigma_y^2 I)^{-1} H  d x0_hat/d x_t]^T
    noiseless (Eq. 9):  g =       [(h_dag(y) - h_dag(h(x0_hat)))^T                d x0_hat/d x_t]^T

(``g = r_t^2 * grad log p(y | x_t)``; in the noiseless form r_t^2 cancels, Eq. 11), added after
the unconditional DDIM step with the signal weight of Algorithm 1:

    x_next = DDIM(x_t, x0_hat) + a_t * g.

``r_t^2 = data_var * sigma^2 / (data_var + sigma^2)`` with ``sigma = b / a`` (App. A.3: the
posterior variance of a Gaussian with the data's variance; ``1 - alpha_bar_t`` for VP in
native units, and the OT-ODE choice of Pokle et al. 2023 on rectified flow).
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
    """

    requires = ("h_dagger",)
    needs_grad = True
    gaussian_noise = True

    def __init__(self, num_steps: int = 100, eta: float = 1.0, cg_iters: int = 50, cg_tol: float = 1e-10,
                 schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, schedule)
        self.cg_iters, self.cg_tol = int(cg_iters), float(cg_tol)

    def check_inputs(self, prior, operator, y, noise):
        super().check_inputs(prior, operator, y, noise)
        if gaussian_sigma(noise, self.name) > 0 and not operator.linear:
            raise ValueError(f"{self.name} with noisy measurements (Eq. 7) needs a linear operator, "
                             f"but {operator.describe()} is not; only noiseless data can use h_dagger")

    def prepare(self, p):
        return dict(hy=p.operator.h_dagger(p.y)) if p.sigma == 0 else None

    def r2(self, s, prior) -> float:
        return tweedie_variance(prior.data_var, s.a, s.b)

    def guidance(self, s, p):
        op, x0 = p.operator, s.x0.detach()
        if p.sigma == 0:
            g = vjp(s.x0, s.x, p.state["hy"] - op.h_dagger(op(x0)))
        else:
            r2 = self.r2(s, p.prior)
            w = op.gram_solve(p.y - op(x0), r2, p.sigma ** 2, self.cg_iters, self.cg_tol)
            g = r2 * vjp(s.x0, s.x, op.adjoint(w))
        return s.a * g
