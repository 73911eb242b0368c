"""Exact-likelihood guidance by moment matching: Boys et al. 2023 (Tweedie moment projected
diffusions), Rozet et al. 2024 (Learning diffusion priors from observations by EM, Sec. 4).

``p(x0 | x_t)`` is replaced by the Gaussian with its exact first two moments, the Tweedie mean
``x0_hat`` and covariance ``Sigma = Cov[x0 | x_t] = (b^2 / a) J`` with ``J = d x0_hat / d x_t``. Then
``p(y | x_t) ~= N(A x0_hat, A Sigma A^T + sigma_y^2 I)`` and, holding the covariance fixed,

    s_y = J^T A^T (A Sigma A^T + sigma_y^2 I)^{-1} (y - A x0_hat),

entered as the posterior-score substitution ``x0_c = x0_hat + (b^2 / a) s_y``. For a Gaussian
prior ``J`` is constant, ``p(x0 | x_t)`` is Gaussian, and ``s_y`` is the exact score of
``p(y | x_t)``: the loop then integrates the exact posterior dynamics.

Two covariances (``covariance=``):

* ``"full"``: ``Sigma = (b^2 / a) J_s``, ``J_s = (J + J^T) / 2``. An exact denoiser has a symmetric
  Jacobian (it is a Hessian), a network's is not, and conjugate gradients on the non-symmetric
  ``A J A^T`` diverge (measured: from 2 iterations on, 6-9 dB on real images). The symmetric part
  keeps the system symmetric, CG stops a sample at negative curvature (``p^T M p <= 0``), so the
  solver is valid for the system it solves, and the update is the Gaussian conditioning
  ``x0_c = x0_hat + Sigma A^T w`` with the same ``Sigma`` (``= (b^2 / a) J^T A^T w``, the score form,
  when ``J`` is symmetric). ``J v`` by the double-backward trick (``g(u) = J^T u``
  built once per step with a graph, ``J v = d (g(u) . v) / d u``), ``J^T v`` by a plain backward.
  Exact for Gaussian priors (``J`` symmetric).
* ``"row_sum"``: TMPD's diagonal covariance (Boys et al. 2023, "Tweedie moment projected
  diffusions for inverse problems", arXiv:2308.14440): ``Sigma ~= diag((b^2 / a) J 1)``, here the
  column sums ``J^T 1`` (one backward; equal to the row sums for a symmetric ``J``), clamped at 0,
  and ``(A diag(v) A^T + sigma_y^2 I) w = r`` by CG (symmetric positive definite; one iteration for
  masks and the identity). Exact for Gaussian priors with a diagonal covariance.

Measured on real images (benchmarks/sweep_methods.md: natural_ddpm, 4 training crops, shipped
settings of configs/method/moment_matching.yaml: covariance='row_sum', cg_iters=5, 25 steps;
posterior mean of 4 samples, PSNR dB): beats the trivial estimate on denoise (28.2 vs 20.3), sr_4x
(23.8 vs 22.2), inpainting (22.3 / 27.4 vs 7.1 / 12.8) and deblur (28.5 vs 25.1); not colorization
(20.1 vs 24.4 for the luminance image, cause not established). covariance='full' on the network
prior, one sample: cg_iters=5 gives 14.4 / 21.9 / 8.3 / 14.1 / 24.4 / 8.6 even symmetrised (the
symmetric part of a network Jacobian is indefinite), cg_iters=1 29.2 / 22.9 / 26.9 / 28.6 / 25.4 /
13.2 at 8x the cost of row_sum; 'full' is for analytic priors, where it is exact.

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``moment_matching`` does not beat the
best baseline by more than the standard error on natural_ddpm colorize 15.74 vs grey 15.57 (8
samples: 16.41, still does not). It beats it on every task run with faces_ddpm (5 of 5 tasks),
natural_rf (6 of 6 tasks), faces_rf (5 of 5 tasks).
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

    Needs a linear operator (``A`` and ``A^T``). Cost per step: one network forward and one plain
    backward, plus (``"full"``) a backward with graph and one double-backward and one backward per CG
    iteration, or (``"row_sum"``) one more backward.

    At ``a = 0`` (the first step of a flow starting at t = 1) the state carries no information:
    the likelihood score is exactly 0 and ``J = 0``, so ``Sigma`` cannot be formed from ``J``;
    that step is taken without guidance (an O(step) error in that single step).

    Args:
        num_steps: network evaluations.
        eta: DDIM stochasticity (1 = DDPM ancestral).
        cg_iters: conjugate-gradient iterations per step (exact after ``len(y)`` in exact arithmetic).
        cg_tol: relative squared-residual tolerance of CG.
        covariance: ``"full"`` (symmetrised Jacobian) or ``"row_sum"`` (TMPD's diagonal).
    """

    COVARIANCES = ("full", "row_sum")

    requires = ("linear",)
    needs_grad = True
    gaussian_noise = True

    def __init__(self, num_steps: int = 1000, eta: float = 1.0, cg_iters: int = 20, cg_tol: float = 1e-12,
                 covariance: str = "full", schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, schedule)
        if int(cg_iters) < 1:
            raise ValueError(f"cg_iters must be >= 1, got {cg_iters}")
        if covariance not in self.COVARIANCES:
            raise ValueError(f"MomentMatching covariance must be one of {self.COVARIANCES}, got {covariance!r}")
        self.cg_iters, self.cg_tol, self.covariance = int(cg_iters), float(cg_tol), covariance

    def estimate(self, s, p):
        a, b, op, sigma = s.a, s.b, p.operator, p.sigma
        if float(a) == 0:
            return s.x0
        c = b ** 2 / a
        r = (p.y - op(s.x0.detach())).detach()
        if self.covariance == "row_sum":
            v = (c * vjp(s.x0, s.x, torch.ones_like(s.x0), retain=True)).clamp_min(0)   # diag(c J^T 1)
            w = conjugate_gradient(lambda w: op(v * op.adjoint(w)) + sigma ** 2 * w, r,
                                   iters=self.cg_iters, tol=self.cg_tol)
        else:
            u = torch.zeros_like(s.x0, requires_grad=True)
            (g,) = torch.autograd.grad(s.x0, s.x, grad_outputs=u, create_graph=True)   # g(u) = J^T u

            def sym_jac(z):         # J_s z = (J z + J^T z) / 2
                (jv,) = torch.autograd.grad(g, u, grad_outputs=z, retain_graph=True)
                p.prior.evaluations.add_backward(z.shape[0])     # the Jacobian-vector product
                return 0.5 * (jv.detach() + vjp(s.x0, s.x, z, retain=True))

            w = conjugate_gradient(lambda w: c * op(sym_jac(op.adjoint(w))) + sigma ** 2 * w, r,
                                   iters=self.cg_iters, tol=self.cg_tol)
            return s.x0 + c * sym_jac(op.adjoint(w))            # x0_hat + Sigma_s A^T w
        s_y = vjp(s.x0, s.x, op.adjoint(w))
        return s.x0 + c * s_y

    def expected_nfe(self, prior):
        n = super().expected_nfe(prior)
        return {"nfe": n["nfe"], "nfe_backward": None}    # CG iterations depend on the data
