"""Pseudoinverse-guided diffusion models (PiGDM), Song, Vahdat, Mardani & Kautz 2023, ICLR.

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

from .base import GuidedMethod
from .spectral import Spectrum, gaussian_sigma, solve_gram, vjp


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

    def __init__(self, num_steps: int = 100, eta: float = 1.0, cg_iters: int = 50, cg_tol: float = 1e-10):
        super().__init__(num_steps, eta)
        self.cg_iters, self.cg_tol = int(cg_iters), float(cg_tol)

    def check_inputs(self, prior, operator, y, noise):
        super().check_inputs(prior, operator, y, noise)
        if gaussian_sigma(noise, self.name) > 0 and not operator.linear:
            raise ValueError(f"{self.name} with noisy measurements (Eq. 7) needs a linear operator, "
                             f"but {operator.describe()} is not; only noiseless data can use h_dagger")

    def prepare(self, p):
        sigma = gaussian_sigma(p.noise, self.name)
        if sigma == 0:
            return dict(sigma=0.0, hy=p.operator.h_dagger(p.y))
        spectrum = Spectrum(p.operator, p.y) if p.operator.has_svd else None
        return dict(sigma=sigma, spectrum=spectrum)

    def r2(self, s, prior) -> float:
        """``r_t^2 = data_var sigma^2 / (data_var + sigma^2)``, ``sigma = b / a`` (data_var at a = 0)."""
        v = prior.data_var
        a, b = float(s.a), float(s.b)
        return v * b ** 2 / (v * a ** 2 + b ** 2)

    def correct(self, s, p):
        op, e, x0 = p.operator, p.extra, s.x0.detach()
        if e["sigma"] == 0:
            g = vjp(s.x0, s.x, e["hy"] - op.h_dagger(op(x0)))
        else:
            r2 = self.r2(s, p.prior)
            lifted = solve_gram(op, p.y - op(x0), r2, e["sigma"], self.cg_iters, self.cg_tol, e["spectrum"])
            g = r2 * vjp(s.x0, s.x, lifted)
        return s.x0, s.a * g
