"""DPS-w, from "Exploiting the exact denoising posterior score in training-free guidance of
diffusion models" (Bellchambers 2025).

Exact posterior (Prop. 4.1, App. A.1). In the VE view ``u = x_t / a = x0 + sigma eps``, ``sigma = b / a``,
and ``y = x0 + sigma_y n`` (denoising), the two Gaussians in ``x0`` combine into one:

    p(x_t | y) ~ N(x_t - y; 0, sigma^2 + sigma_y^2) * p_s(m),
    m = (sigma_y^2 u + sigma^2 y) / (sigma^2 + sigma_y^2),   s^2 = sigma^2 sigma_y^2 / (sigma^2 + sigma_y^2),

so the posterior score is a linear function of the *prior* score at ``m`` and level ``s`` (Eq. 8) and,
by Tweedie, the posterior denoiser is the prior denoiser there:

    E[x0 | x_t, y] = E[x0 | x0 + s n = m] = prior.denoise(a_tau m, tau),   b_tau / a_tau = s.

For inpainting (Prop. 4.2, the limit of App. A.1's invertible A) the same holds pixel-wise with
level ``s`` on observed and ``sigma`` on missing pixels: it needs a *non-isotropic* denoiser
(Eq. 10). Generally, for ``A = U diag(s_i) V^T`` the pseudo-observation ``m`` has precision
``P = V diag(a^2/b^2 + s_i^2/sigma_y^2) V^T`` and ``P m = a x_t / b^2 + A^T y / sigma_y^2``.

DPS-w (Sec. 4.3, Eqs. 11-14, App. B.3). DPS's likelihood score ``g = -grad_{x_t} ||y - A x0_hat||^2``
is rescaled per step by the weight that best fits the exact likelihood score of a *reference
denoising task* ``y_ref`` with noise ``sigma_ref`` (App. B.3): ``y`` itself for denoising, and for
inpainting with the fit on observed pixels (Eq. 42); the upsampled measurement for super-resolution
(B.3.2) and the grayscale image for colorization (B.3.4), i.e. the replicating right inverse
``y 1 / (1^T w)`` of a block operator (``sigma_ref = sigma_y / |1^T w|``); for another operator with
``A A^T = c^2 I``, ``A^+ y = A^T y / c^2`` (``sigma_ref = sigma_y / c``). Not ``A^T y`` itself: for 4x
average pooling that is the image divided by 16, for colorization the luminance tinted by ``w``
(the cause, before this was fixed, of 21.1 dB vs 26.7 for the pseudo-inverse on sr_4x, held-out):

    s_ref = grad log p(y_ref | x_t) = a (E[x0 | x_t, y_ref] - x0_hat) / b^2      (Eqs. 11-12),
    g_ref = -grad_{x_t} ||y_ref - x0_hat||^2,      w_t = <s_ref, g_ref> / ||g_ref||^2   (Eq. 14, 40),

and the likelihood score ``w_t g`` enters the loop as a score: ``x0_c = x0_hat + (b^2 / a) w_t g``
(which is DPS's update with the step size ``w_t`` times the step's score coefficient).

Measured on real images (benchmarks/sweep_methods.md: natural_ddpm, 4 training crops, 25 steps, one
sample per crop, PSNR dB; trivial: y 20.3, pinv 22.2, 7.1 / 12.8, grey 24.4). Before the reference was
fixed (``A^T y``) and without the dimension correction: sr_4x 11.5 (w_scale 1) / 16.3 (w_scale 3);
colorize 13.9 / 14.7. Now, with the shipped w_scale 3 and ``dim_correction``: denoise 28.75, sr_4x
22.31, inpaint 22.96 / 24.91, colorize 12.95 (w_scale 1: 28.11, 23.03, 17.65 / 27.55, 15.13).
Still losing on colorization: the method samples colour from an over-saturated prior
(benchmarks/colorization.md); deblurring is refused (``A A^T != c I``, no reference task).

Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on real
images; more samples: ``benchmarks/real_images_samples.md``). ``dpsw`` does not beat the best
baseline by more than the standard error on natural_ddpm sr_4x 26.47 vs pinv 26.65 (8 samples:
27.66, beats it), deblur refused, colorize 15.08 vs grey 15.57; faces_ddpm deblur refused;
natural_rf sr_4x 26.59 vs pinv 26.65 (8 samples: 27.32, beats it), deblur refused; faces_rf deblur
refused.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..operators.blockwise import BlockRankOneOperator
from ..operators.inpainting import MaskInpainting
from ..priors.analytic import GaussianMixturePrior
from ..sampling.schedules import Schedule, time_at_level
from .base import GuidedMethod
from .likelihood import per_sample_sum
from .spectral import vjp


def denoising_posterior_mean(prior, x: Tensor, a, b, y: Tensor, sigma_y: float) -> Tensor:
    """``E[x0 | x_t, y]`` for ``y = x0 + sigma_y n`` (Prop. 4.1) from the prior's own denoiser.

    ``m = (a sigma_y^2 x + b^2 y) / (b^2 + a^2 sigma_y^2)``, ``s^2 = b^2 sigma_y^2 / (b^2 + a^2 sigma_y^2)``
    (finite at ``a = 0``). A level below the path's smallest is clamped to ``t_min`` (an
    approximation in the last steps only)."""
    den = b ** 2 + a ** 2 * sigma_y ** 2
    m = (a * sigma_y ** 2 * x + b ** 2 * y) / den
    level = float((b ** 2 * sigma_y ** 2 / den).sqrt())
    tau = time_at_level(prior.path, level)
    a_tau, _ = prior.coefficients(tau, x)
    return prior.denoise(a_tau * m, tau)


def mixture_posterior_mean(prior: GaussianMixturePrior, P: Tensor, h: Tensor) -> Tensor:
    """``E[x0 | m]`` for a Gaussian-mixture prior and a Gaussian pseudo-observation ``m`` of ``x0``
    given in information form (precision ``P`` (B, d, d), ``h = P m`` (B, d)); ``P`` may be singular.

    Per component ``k``: ``E_k = m_k + C_k (I + P C_k)^{-1} (h - P m_k)``; responsibilities
    ``log w_k + m_k^T h - m_k^T P m_k / 2 + g_k^T C_k (I + P C_k)^{-1} g_k / 2 - logdet(I + P C_k) / 2``
    with ``g_k = h - P m_k`` (the Gaussian evidence with the ``k``-independent terms dropped)."""
    d, h = P.shape[-1], h.to(P)
    eye = torch.eye(d, dtype=P.dtype, device=P.device)
    means, logits = [], []
    for k in range(len(prior.weights)):
        mk, Ck = prior.means[k].to(P), prior.covs[k].to(P)
        g = h - P @ mk
        M = eye + P @ Ck
        sol = torch.linalg.solve(M, g.unsqueeze(-1)).squeeze(-1)
        means.append(mk + sol @ Ck)
        logits.append(torch.log(prior.weights[k]).to(P) + h @ mk - 0.5 * (mk @ P @ mk)
                      + 0.5 * ((g @ Ck) * sol).sum(-1) - 0.5 * torch.linalg.slogdet(M)[1])
    resp = torch.softmax(torch.stack(logits, 1), 1)
    return (resp.unsqueeze(-1) * torch.stack(means, 1)).sum(1)


def reference_measurement(op, y: Tensor, sigma: float) -> tuple[Tensor, float]:
    """DPS-w's reference denoising measurement of ``x0`` and its noise std (App. B.3): ``y`` for a
    mask (Eq. 42), the replicating right inverse for a block operator (the upsampled measurement,
    B.3.2; the grayscale image, B.3.4), else ``A^+ y`` (operators with ``A A^T = c^2 I``)."""
    if isinstance(op, MaskInpainting):
        return op.adjoint(y), sigma
    if isinstance(op, BlockRankOneOperator):
        return op.replicate(y), sigma / abs(float(op.w.sum()))
    c = float(op.singular_values().flatten()[0])
    return op.pinv(y), sigma / c


class DPSw(GuidedMethod):
    """DPS-w and the exact posterior denoiser it is built on (Bellchambers 2025).

    ``mode="dps-w"`` (the paper's method): DPS with the per-step weight ``w_t`` fitted on the exact
    score of the reference denoising task (``reference_measurement``); needs an operator with an SVD that is a
    mask or has ``A A^T = c I`` (others are refused: see :meth:`check_reference`) and Gaussian
    noise, and one extra prior call per step. ``mode="exact"``: the exact posterior denoiser of
    Props. 4.1-4.2; needs an operator with an SVD. When ``A^T A`` is a multiple of the identity
    (denoising, Prop. 4.1) any prior works; otherwise (inpainting, Prop. 4.2, or a general ``A``)
    it needs a non-isotropic denoiser, which only analytic Gaussian-mixture priors have in
    closed form -- other priors are refused, as the paper notes such denoisers are rarely available.

    Args:
        num_steps: network evaluations (paper: 1000 DDPM steps; 100 also reported).
        eta: DDIM stochasticity (1 = the paper's DDPM ancestral sampler).
        mode: ``"dps-w"`` or ``"exact"``.
        w_scale: multiplies ``w_t`` (the paper's super-resolution correction for the dimension of
            the reference, App. B.3.2; 1 for denoising and inpainting).
        w_max: cap on ``w_t`` (the paper's ``w_max`` for super-resolution); None = no cap.
        dim_correction: also multiply ``w_t`` by ``n / m``, the dimension of ``x0`` over that of ``y``:
            the paper's super-resolution correction for the size of the reference (App. B.3.2;
            ``f^2`` for ``f x f`` pooling, measured: the reference-task weight is 16x too small for
            4x pooling, where DPS's gradient carries ``A^T``, norm 1/4, and a residual 1/4 of the
            reference's); for colorization 3, the factor between the paper's grey measurement
            repeated over the channels (B.3.4) and ours; 1 for denoising and inpainting.
    """

    MODES = ("dps-w", "exact")

    gaussian_noise = True

    def __init__(self, num_steps: int = 1000, eta: float = 1.0, mode: str = "dps-w",
                 w_scale: float = 1.0, w_max: Optional[float] = None, dim_correction: bool = True,
                 schedule: Optional[Schedule] = None):
        super().__init__(num_steps, eta, schedule)
        if mode not in self.MODES:
            raise ValueError(f"DPSw mode must be one of {self.MODES}, got {mode!r}")
        if not float(w_scale) > 0 or (w_max is not None and not float(w_max) > 0):
            raise ValueError(f"DPSw w_scale and w_max must be > 0, got {w_scale}, {w_max}")
        self.mode, self.w_scale = mode, float(w_scale)
        self.w_max = None if w_max is None else float(w_max)
        self.dim_correction = bool(dim_correction)

    requires = ("svd",)

    def check_inputs(self, prior, operator, y, noise):
        super().check_inputs(prior, operator, y, noise)
        if self.mode == "dps-w" and not isinstance(operator, MaskInpainting):
            self.check_reference(operator, y)

    @property
    def needs_grad(self) -> bool:
        return self.mode == "dps-w"

    @property
    def name(self) -> str:
        return "DPSw" if self.mode == "dps-w" else "DPSw[exact]"

    # --- preparation -----------------------------------------------------------
    def prepare(self, p):
        sigma = p.sigma
        op = p.operator
        if self.mode == "dps-w":
            mask = isinstance(op, MaskInpainting)
            support = op.mask.expand(p.y.shape[0], *p.prior.image_shape) if mask else None
            y_ref, sigma_ref = reference_measurement(op, p.y, sigma)
            dim = y_ref[0].numel() / p.y[0].numel() if self.dim_correction else 1.0
            return dict(sigma=sigma_ref, y_ref=y_ref, support=support, dim=dim)
        sp = p.spectrum()
        s = sp.s.expand(p.y.shape[0], -1)
        if bool(sp.measured.all()) and float(s.max() - s.min()) <= 1e-10 * float(s.max()):
            c = float(s[0, 0])                  # A^T A = c^2 I: denoising of A^+ y with noise sigma / c
            return dict(isotropic=True, y=op.pinv(p.y), sigma=sigma / c)
        if not isinstance(p.prior, GaussianMixturePrior):
            raise ValueError(f"DPSw(mode='exact') with {op.describe()} needs a non-isotropic denoiser "
                             f"(Prop. 4.2), which {type(p.prior).__name__} does not provide; only "
                             f"Gaussian-mixture priors have one in closed form (use mode='dps-w')")
        if sigma <= 0:
            raise ValueError("DPSw(mode='exact') with a non-isotropic operator needs sigma_y > 0")
        n = sp.s.shape[-1]
        V = sp.v(torch.eye(n, dtype=p.y.dtype, device=p.y.device)).flatten(1).T   # columns V e_j
        Aty = sp.v(s * sp.uy / sigma ** 2).flatten(1)
        return dict(isotropic=False, V=V, s2=s ** 2 * sp.measured / sigma ** 2, Aty=Aty)

    def check_reference(self, op, y) -> None:
        """Refuse an operator for which the reference ``y_ref`` is not a denoising measurement of ``x0``.

        ``A^T y / c^2 = A^+ A x0 + A^+ n`` is a noisy copy of ``x0`` on the row space only when
        ``A A^T = c^2 I`` (all singular values equal: identity, average-pooling SR, colorization);
        for any other operator (blur, a dense low-rank matrix) the reference task is a different,
        unrelated problem and its weight is meaningless (measured on Gaussian-mixture problems
        with a random dense operator: unconditional samples). Masks are handled by Eq. 42.
        """
        s = op.singular_values()
        if not (s.shape[-1] == y[0].numel() and float(s.min()) > 0
                and float(s.max() - s.min()) <= 1e-6 * float(s.max())):
            raise ValueError(f"DPSw(mode='dps-w') builds its reference task from A^T y, which is a denoising "
                             f"measurement only for a mask or an operator with A A^T = c I (equal singular "
                             f"values); {op.describe()} is neither")

    # --- the correction ----------------------------------------------------------
    def estimate(self, s, p):
        if self.mode == "exact":
            return self.exact_mean(s, p)
        if float(s.a) == 0:                     # x_t carries no information: J = 0, no guidance
            return s.x0
        e, op, x0 = p.state, p.operator, s.x0.detach()
        y_ref = e["y_ref"]
        if e["support"] is not None:              # inpainting: missing pixels keep u = x_t / a (Eq. 9)
            y_ref = e["support"] * y_ref + (1 - e["support"]) * s.x.detach() / s.a
        ref = denoising_posterior_mean(p.prior, s.x.detach(), s.a, s.b, y_ref, e["sigma"])
        s_ref = s.a * (ref - x0) / s.b ** 2                                      # Eqs. 11-12
        g_ref = vjp(s.x0, s.x, 2 * (y_ref - x0), retain=True)                   # -grad ||y_ref - x0_hat||^2
        g = vjp(s.x0, s.x, 2 * op.adjoint(p.y - op(x0)))                        # -grad ||y - A x0_hat||^2
        w = self.weight(s_ref, g_ref, e["support"], e["dim"])
        return x0 + s.b ** 2 / s.a * w * g

    def expected_nfe(self, prior):
        if self.mode == "exact":
            return None                         # one or two prior calls per step, by operator
        pairs = self.pairs(prior)
        guided = sum(1 for t, _ in pairs if self.informative(prior, t))
        return {"nfe": len(pairs) + guided, "nfe_backward": 2 * guided}

    def weight(self, s_ref: Tensor, g_ref: Tensor, support: Optional[Tensor], dim: float = 1.0) -> Tensor:
        """``w_t = <s_ref, g_ref> / ||g_ref||^2`` per sample, on the support (Eqs. 14, 40, 42), times
        ``w_scale`` and the dimension correction ``dim``, capped at ``w_max``."""
        if support is not None:
            s_ref, g_ref = s_ref * support, g_ref * support
        num, den = per_sample_sum(s_ref * g_ref), per_sample_sum(g_ref ** 2)
        w = torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num)) * self.w_scale * dim
        if self.w_max is not None:
            w = w.clamp(max=self.w_max)
        return w.view(-1, *([1] * (s_ref.dim() - 1)))

    def exact_mean(self, s, p) -> Tensor:
        """``E[x0 | x_t, y]`` (Props. 4.1-4.2)."""
        e, x = p.state, s.x
        if e["isotropic"]:
            return denoising_posterior_mean(p.prior, x, s.a, s.b, e["y"], e["sigma"])
        snr = (s.a / s.b) ** 2
        pi = snr + e["s2"]                                                   # (B, n) spectral precisions
        P = torch.einsum("dn,bn,en->bde", e["V"], pi, e["V"])
        h = s.a * x.flatten(1) / s.b ** 2 + e["Aty"]
        return mixture_posterior_mean(p.prior, P, h.to(P)).to(x).view_as(x)
