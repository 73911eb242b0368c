"""Exact-likelihood guidance by moment matching: Boys et al. 2023 (Tweedie moment projected
diffusions), Rozet et al. 2024 (Learning diffusion priors from observations by EM, Sec. 4).

``p(x0 | x_t)`` is replaced by the Gaussian with its exact first two moments, the Tweedie mean
``x0_hat`` and covariance ``Sigma = Cov[x0 | x_t] = (b^2 / a) J`` with ``J = d x0_hat / d x_t``. Then
``p(y | x_t) ~= N(A x0_hat, A Sigma A^T + sigma_y^2 I)`` and, holding the covariance fixed,

    s_y = J^T A^T (A Sigma A^T + sigma_y^2 I)^{-1} (y - A x0_hat),

entered as the posterior-score substitution ``x0_c = x0_hat + (b^2 / a) s_y``. For a Gaussian
prior ``J`` is constant, ``p(x0 | x_t)`` is Gaussian, and ``s_y`` is the exact score of
``p(y | x_t)``: the loop then integrates the exact posterior dynamics.

The inverse is taken by conjugate gradients on ``w -> (b^2/a) A J A^T w + sigma_y^2 w``, with
Jacobian-vector products ``J v`` by the double-backward trick: ``g(u) = J^T u`` is built once per
step with a graph, and ``J v = d (g(u) . v) / d u``.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..operators.linalg import conjugate_gradient
from ..sampling.schedules import Schedule
from .base import GuidedMethod
from .spectral import vjp


class MomentMatching(GuidedMethod):
    """Moment-matching / exact-likelihood guidance (Boys et al. 2023; Rozet et al. 2024).

    Needs a linear operator (``A`` and ``A^T``). Cost per step: one network forward, one
    backward with graph, one double-backward per CG iteration, one plain backward.

    At ``a = 0`` (the first step of a flow starting at t = 1) the state carries no information:
    the likelihood score is exactly 0 and ``J = 0``, so ``Sigma`` cannot be formed from ``J``;
    that step is taken without guidance (an O(step) error in that single step).

    Args:
        num_steps: network evaluations.
        eta: DDIM stochasticity (1 = DDPM ancestral).
        cg_iters: conjugate-gradient iterations per step (exact after ``len(y)`` in exact arithmetic).
        cg_tol: relative squared-residual tolerance of CG.
    """

    requires = ("linear",)
    needs_grad = True
    gaussian_noise = True

    def __init__(self, num_steps: int = 1000, eta: float = 1.0, cg_iters: int = 20, cg_tol: float = 1e-12,
                 schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, schedule)
        if int(cg_iters) < 1:
            raise ValueError(f"cg_iters must be >= 1, got {cg_iters}")
        self.cg_iters, self.cg_tol = int(cg_iters), float(cg_tol)

    def estimate(self, s, p):
        a, b, op, sigma = s.a, s.b, p.operator, p.sigma
        if float(a) == 0:
            return s.x0
        c = b ** 2 / a
        u = torch.zeros_like(s.x0, requires_grad=True)
        (g,) = torch.autograd.grad(s.x0, s.x, grad_outputs=u, create_graph=True)   # g(u) = J^T u

        def cov_matvec(w):          # (A Sigma A^T + sigma^2) w = c A J A^T w + sigma^2 w
            (jv,) = torch.autograd.grad(g, u, grad_outputs=op.adjoint(w), retain_graph=True)
            p.prior.evaluations.add_backward(w.shape[0])     # a Jacobian-vector product
            return c * op(jv.detach()) + sigma ** 2 * w

        w = conjugate_gradient(cov_matvec, (p.y - op(s.x0.detach())).detach(), iters=self.cg_iters, tol=self.cg_tol)
        s_y = vjp(s.x0, s.x, op.adjoint(w))
        return s.x0 + c * s_y

    def expected_nfe(self, prior):
        n = super().expected_nfe(prior)
        return {"nfe": n["nfe"], "nfe_backward": None}    # CG iterations depend on the data
