"""OT-ODE: training-free linear image inverses via flows, Pokle, Muckley, Chen & Karrer 2024, TMLR
(arXiv:2310.04432), for rectified-flow (conditional optimal-transport) priors.

The flow's ODE is integrated with the velocity of the *posterior*: the prior score is replaced by
``score + s_y`` with PiGDM's likelihood score (Gaussian ``p(x0 | x_t) = N(x0_hat, r_t^2 I)``,
``r_t^2 = v sigma^2 / (v + sigma^2)``, ``sigma = b / a``, the paper's choice for OT paths with
``v`` the data variance: :func:`~lit_ip.methods.pigdm.tweedie_variance`):

    s_y  = J^T A^T (r_t^2 A A^T + sigma_y^2 I)^{-1} (y - A x0_hat),      J = d x0_hat / d x_t,
    x0_c = x0_hat + gamma (b^2 / a) s_y,                                  x_next = Euler(x_t, x0_c),

which in velocity form is the paper's ``v_y = v + (b/a)(a' b - a b') s_y`` (the conversion of a
score to an OT velocity), and starts at ``t_start < 1`` from the noised pseudo-inverse
``x = a A^+ y + b z`` (the paper's initialisation at a non-zero time; :meth:`initial_state`).
The Euler step is DDIM with ``eta = 0`` (exact for the rectified-flow path ``a = 1 - t, b = t``).
Differences from the paper: the paper tunes a guidance-weight schedule; here it is a constant
``gamma`` (1 = the exact posterior-velocity conversion). ``t_start`` is a fraction of the path's
time range (on a flow, ``t``; the paper's ``t0`` in its data-at-1 convention is ``1 - t_start``).
The formulas are path-generic (``a, b``) and run on VP priors too; the paper's setting is the flow.
Units: none to convert (the path carries them; ``r_t`` uses the prior's [0, 1] data variance).

Real images (shipped settings ``configs/method/otode.yaml``, chosen on 4 training crops with the
natural_ddpm prior; ``benchmarks/method_settings_sweep.md``): mean PSNR (dB): denoise 28.78, sr_4x
24.24, inpaint_70 22.03, inpaint_box 24.67, deblur 28.60, colorize 18.20. It does not beat the best
trivial estimate on: colorize 18.20 vs grey 25.30. Why: colorization; on VP priors it needs
``t_start <= 0.5`` (from 0.8 the VP state is almost pure noise and the exact conversion ``b^2 / a``
of the network's Jacobian fails: 13.5 dB on denoising). On the rectified-flow prior natural_rf (4
training crops, 30 steps, t_start 0.8): denoising 27.5 dB vs 20.5, SR 23.4 vs pinv 23.7 (not
beaten).

**Restricted sources** (priors from ``SubspaceFlowTraining``; derivation in :mod:`lit_ip.methods.source`).
The ODE step needs only ``E[x1 | x_t]``, so it holds for any source; Tweedie's formula and PiGDM's
Gaussian model change with the source covariance ``S = U U^T`` (Gaussian data ``N(m, v I)``):

    C_t  = r_t^2 U U^T                        (Cov[x0 | x_t]; 0 outside the subspace for a > 0)
    s_y  = J^T A^T (A C_t A^T + sigma_y^2 I)^{-1} (y - A x0_hat),
    x0_c = x0_hat + gamma (b^2 / a) U U^T s_y,

which is exactly ``E[x0 | x_t, y]`` when the data are ``N(m, v I)`` (J then gives
``(b^2 / a) U U^T J = C_t``; tested in tests/test_source_methods.py) and reduces to the isotropic
formulas at ``U U^T = I``. The initial state is ``a x_init + b x1`` with ``x1`` from the source. Every
step keeps ``P_perp x0`` (outside the subspace) at ``P_perp x_init`` (from the pure source, ``t_start = 1``:
at the first estimate, the data mean), so ``init`` matters here:
``"pinv"`` (``A^+ y``, the paper's) or ``"gaussian"`` (``E[x0 | y]`` of the same Gaussian model,
``m + v A^T (v A A^T + sigma_y^2 I)^{-1} (y - A m)``, the ``a -> 0`` limit of ``x0_c``). Noiseless
measurements are refused there (``A C_t A^T`` has rank ``k``).

``jacobian=False`` replaces ``(b^2 / a) S J^T`` by its Gaussian-model value ``C_t`` (equal when the data
are ``N(m, v I)``): ``x0_c = x0_hat + gamma C_t A^T (A C_t A^T + sigma_y^2 I)^{-1} (y - A x0_hat)``, no
backward pass. Why it matters for restricted sources: ``(A C_t A^T + sigma_y^2 I)^{-1}`` weights the
residual outside ``range(A U)`` by ``1 / sigma_y^2``; ``U^T A^T`` annihilates that part exactly, but a
network's ``J^T`` need not be block-diagonal in ``(U, U_perp)`` and can leak it into the subspace
(``benchmarks/small_data_flow.md``: from the pure source the Jacobian form fails on restricted priors,
6.1-6.5 dB inpainting, the Jacobian-free one reaches 20.7-22.8 dB).

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``otode`` does not beat the best
baseline by more than the standard error on natural_ddpm colorize 15.82 vs grey 15.57; natural_rf
sr_4x 26.67 vs pinv 26.65 (8 samples: 28.11, beats it), colorize 15.83 vs grey 15.57. It beats it on
every task run with faces_ddpm (5 of 5 tasks), faces_rf (5 of 5 tasks).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..sampling.schedules import Schedule
from .base import GuidedMethod
from .projection import check_cutoff, pinv, require_svd_for_cutoff
from .pigdm import tweedie_variance
from .source import likelihood_solve, project, source_of
from .spectral import vjp

INITS = ("pinv", "gaussian")


class OTODE(GuidedMethod):
    """OT-ODE (Pokle et al. 2024): ODE with the PiGDM-form posterior velocity from a noised ``A^+ y``.

    Args:
        num_steps: network evaluations (Euler steps).
        t_start: start as a fraction of the path's time range (1 = pure noise).
        gamma: constant guidance weight (1 = exact conversion of ``s_y``).
        cg_iters, cg_tol: conjugate gradients for operators without an SVD.
        svd_cutoff: truncated ``A^+`` in the initial state for SVD operators (noisy blur); 0 = exact.
        init: the clean estimate the initial state is built from: ``"pinv"`` (the paper's) or
            ``"gaussian"`` (the Gaussian model's ``E[x0 | y]``; module docstring).
        jacobian: the paper's vector-Jacobian product (True) or its Gaussian-model value (False).
    """

    requires = ("linear",)
    needs_grad = True
    gaussian_noise = True

    def __init__(self, num_steps: int = 100, t_start: float = 0.8, gamma: float = 1.0, cg_iters: int = 50,
                 cg_tol: float = 1e-10, svd_cutoff: float = 0.0, init: str = "pinv", jacobian: bool = True,
                 schedule: Optional[Schedule] = None):
        super().__init__(num_steps, 0.0, schedule)
        self.jacobian = bool(jacobian)
        self.needs_grad = self.jacobian
        if init not in INITS:
            raise ValueError(f"OTODE init must be one of {INITS}, got {init!r}")
        self.init = init
        if not 0 < float(t_start) <= 1 or not float(gamma) >= 0:
            raise ValueError(f"OTODE needs 0 < t_start <= 1 and gamma >= 0, got {t_start}, {gamma}")
        self.t_start, self.gamma = float(t_start), float(gamma)
        self.cg_iters, self.cg_tol = int(cg_iters), float(cg_tol)
        self.svd_cutoff = check_cutoff(svd_cutoff)

    def accepts_source(self, prior):
        return True

    def check_inputs(self, prior, operator, y, noise):
        super().check_inputs(prior, operator, y, noise)
        if source_of(prior) is not None and self.gamma > 0 and not self.gaussian_sigma_of(noise) > 0:
            raise ValueError("OTODE on a prior with a restricted source needs sigma_y > 0 (A C_t A^T has rank k, "
                             "so a noiseless measurement has no finite Gaussian-model likelihood score)")

    @staticmethod
    def gaussian_sigma_of(noise):
        from .spectral import gaussian_sigma
        return gaussian_sigma(noise, "OTODE")

    def check_operator(self, operator):
        super().check_operator(operator)
        require_svd_for_cutoff(self, operator)

    def pairs(self, prior, t_start=None):
        path = prior.path
        top = float(path.t_min) + self.t_start * (float(path.t_max) - float(path.t_min))
        return self.schedule.pairs(path, self.num_steps, path.snap(top) if t_start is None else t_start)

    def initial_state(self, p, t0, rng):
        a, b = p.prior.coefficients(t0, p.y)
        src = source_of(p.prior)
        if src is None:
            noise = b * rng.randn((p.y.shape[0], *p.prior.image_shape)).to(p.y)
        else:                                   # b x1 with x1 from the source
            noise = p.prior.init_noise(p.y.shape[0], rng, t0).to(p.y) - a * p.prior.data_mean
        if float(a) == 0:
            return p.prior.data_mean * a + noise
        return a * self.initial_estimate(p) + noise

    def initial_estimate(self, p):
        """``x_init``: ``A^+ y`` or the Gaussian model's ``E[x0 | y]`` (``init``)."""
        if self.init == "pinv":
            return pinv(p, p.y, self.svd_cutoff)
        op, m, v = p.operator, p.prior.data_mean, p.prior.data_var
        x_m = torch.full((p.y.shape[0], *p.prior.image_shape), m, dtype=p.y.dtype, device=p.y.device)
        w = op.gram_solve(p.y - op(x_m), v, p.sigma ** 2, self.cg_iters, self.cg_tol)
        return x_m + v * op.adjoint(w)

    def estimate(self, s, p):
        x0 = s.x0.detach()
        if not self.informative(p.prior, s.t) or self.gamma == 0:
            return x0
        op, src = p.operator, source_of(p.prior)
        r2 = tweedie_variance(p.prior.data_var, s.a, s.b)
        w = likelihood_solve(op, src, p.y - op(x0), r2, p.sigma ** 2, self.cg_iters, self.cg_tol)
        if not self.jacobian:                       # (b^2 / a) S J^T -> C_t = r_t^2 S
            g = op.adjoint(w)
            return x0 + self.gamma * r2 * (g if src is None else project(src, g))
        s_y = vjp(s.x0, s.x, op.adjoint(w))
        if src is not None:
            s_y = project(src, s_y)
        return x0 + self.gamma * (s.b ** 2 / s.a) * s_y
