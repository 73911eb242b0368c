"""Non-isotropic noise: a noise level per pixel, and the closed-form denoiser of analytic priors.

The non-isotropic path (VE form, [0, 1] image units) noises each pixel at its own level,

    u = x0 + sigma ⊙ eps,        sigma a map broadcastable to x0 ((B, 1 or C, H, W)),

and a non-isotropic denoiser returns ``D(u, sigma) = E[x0 | u]``; its score follows by Tweedie,
``grad_u log p_sigma(u) = (D(u, sigma) - u) / sigma^2`` (pixel-wise). An isotropic path state
``x_t = a x0 + b eps`` is the map ``u = x_t / a`` with the uniform level ``b / a``.

Why (Bellchambers 2025, "Exploiting the exact denoising posterior score in training-free guidance
of diffusion models", Prop. 4.2, Eqs. 9-10): with inpainting ``y = M x0 + sigma_y n`` the two
Gaussians in ``x0`` of ``p(x_t | x0) p(y | x0)`` combine pixel-wise (:func:`inpainting_pseudo_observation`)
into ``N(x_t - y; 0, sigma^2 + sigma_y^2)`` on observed pixels times a *non-isotropic* noising of
``x0`` observed as ``m`` at levels ``s``, so that

    grad log p(x_t | y) = -M (u - y) / (a (sigma^2 + sigma_y^2)) + J grad log p_s(m) / a,
    E[x0 | x_t, y]      = D(m, s)                      (the exact posterior Tweedie estimate),

with ``J = dm/du`` (``sigma_y^2 / (sigma^2 + sigma_y^2)`` observed, 1 missing).

:class:`NonIsotropicPath` also fixes how training draws maps (:meth:`NonIsotropicPath.sample_maps`):
the maps the inpainting posterior visits, plus uniform ones.

Analytic priors: for ``x0 ~ sum_k w_k N(m_k, C_k)`` and ``S = diag(sigma^2)``,

    E[x0 | u] = sum_k pi_k(u) (m_k + C_k (C_k + S)^{-1} (u - m_k)),
    pi_k(u) ~ w_k N(u; m_k, C_k + S),

(:func:`mixture_denoise_map`; ``sigma = 0`` pixels are allowed where ``C_k + S`` stays invertible).
:func:`denoise_map` is the one entry point methods call: a prior's own ``denoise_map`` (network
priors, :mod:`lit_ip.priors.nonisotropic_network`) or the closed form of a Gaussian mixture.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor

from .analytic import GaussianMixturePrior


class NonIsotropicPath:
    """Per-pixel VE noise ``u = x0 + sigma ⊙ eps`` on ``[sigma_min, sigma_max]`` ([0, 1] units),
    with the distribution of training maps.

    Training maps (:meth:`sample_maps`), one per image:

    * the level ``sigma`` of the noised pixels: with probability ``1 - loguniform_fraction``
      log-normal, ``ln sigma ~ N(p_mean, p_std^2)`` (EDM, Karras et al. 2022, arXiv:2206.00364, in
      [0, 1] units: their -1.2, 1.2 on [-1, 1] data is ``p_mean = -1.2 - ln 2``), otherwise
      log-uniform on the whole range (the high levels an isotropic VP sampler starts from);
    * with probability ``iso_fraction`` the map is uniform (ordinary isotropic denoising);
      otherwise a mask of "observed" pixels -- half the time random pixels (observed fraction
      uniform in ``[0.05, 0.95]``), half a missing rectangle (sides uniform in ``[H/4, 3H/4]``) --
      and the observed pixels get the level ``s = sigma sigma_y / sqrt(sigma^2 + sigma_y^2)`` of
      Eq. 9-10 with ``sigma_y`` log-uniform in ``sigma_y_range``: exactly the maps
      :func:`inpainting_pseudo_observation` produces for an inpainting posterior.

    Levels below ``sigma_min`` are clamped to it in training (and in a network's conditioning).
    """

    kind = "noniso_ve"

    def __init__(self, sigma_min: float = 0.001, sigma_max: float = 80.0, p_mean: float = -1.89,
                 p_std: float = 1.2, loguniform_fraction: float = 0.5, iso_fraction: float = 0.3,
                 sigma_y_range: Sequence[float] = (0.001, 0.2)):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        for name, v in (("loguniform_fraction", loguniform_fraction), ("iso_fraction", iso_fraction)):
            if not 0 <= v <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        lo, hi = (float(v) for v in sigma_y_range)
        if not 0 < lo <= hi:
            raise ValueError(f"sigma_y_range must be 0 < lo <= hi, got {tuple(sigma_y_range)}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.p_mean, self.p_std = float(p_mean), float(p_std)
        self.loguniform_fraction, self.iso_fraction = float(loguniform_fraction), float(iso_fraction)
        self.sigma_y_range = (lo, hi)

    # --- the noise ---------------------------------------------------------------
    @staticmethod
    def noise(x0: Tensor, sigma: Tensor, eps: Tensor) -> Tensor:
        """``u = x0 + sigma ⊙ eps``."""
        return x0 + sigma * eps

    def clamp(self, sigma: Tensor) -> Tensor:
        return sigma.clamp(self.sigma_min, self.sigma_max)

    def log_level(self, sigma: Tensor) -> Tensor:
        """``ln sigma`` mapped linearly to [0, 1] over the path's range (clamped): a network's
        conditioning input."""
        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        return ((torch.log(self.clamp(sigma)) - lo) / (hi - lo))

    # --- training maps -------------------------------------------------------------
    def _levels(self, n: int, g) -> Tensor:
        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        normal = self.p_mean + self.p_std * torch.randn(n, generator=g, dtype=torch.float64)
        uniform = lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)
        pick = torch.rand(n, generator=g, dtype=torch.float64) < self.loguniform_fraction
        return torch.where(pick, uniform, normal).clamp(lo, hi).exp()

    def sample_maps(self, n: int, image_shape: Sequence[int], generator: Optional[torch.Generator] = None,
                    ) -> Tensor:
        """``n`` training maps of shape ``(n, 1, H, W)`` (float64), drawn as described above."""
        g = generator
        _, H, W = (int(s) for s in image_shape)
        sigma = self._levels(n, g).view(n, 1, 1, 1).expand(n, 1, H, W).clone()
        kind = torch.rand(n, generator=g)
        ly0, ly1 = math.log(self.sigma_y_range[0]), math.log(self.sigma_y_range[1])
        for i in range(n):
            if kind[i] < self.iso_fraction:
                continue
            if torch.rand((), generator=g) < 0.5:
                frac = 0.05 + 0.9 * float(torch.rand((), generator=g))
                observed = torch.rand(H, W, generator=g) < frac
            else:
                h = int(H * (0.25 + 0.5 * float(torch.rand((), generator=g))))
                w = int(W * (0.25 + 0.5 * float(torch.rand((), generator=g))))
                r = int(torch.randint(0, H - h + 1, (), generator=g))
                c = int(torch.randint(0, W - w + 1, (), generator=g))
                observed = torch.ones(H, W, dtype=torch.bool)
                observed[r:r + h, c:c + w] = False
            sy = math.exp(ly0 + (ly1 - ly0) * float(torch.rand((), generator=g)))
            s = float(sigma[i, 0, 0, 0])
            sigma[i, 0][observed] = s * sy / math.sqrt(s ** 2 + sy ** 2)
        return sigma.clamp_min(self.sigma_min)

    def config(self) -> dict:
        return dict(kind=self.kind, sigma_min=self.sigma_min, sigma_max=self.sigma_max,
                    p_mean=self.p_mean, p_std=self.p_std, loguniform_fraction=self.loguniform_fraction,
                    iso_fraction=self.iso_fraction, sigma_y_range=list(self.sigma_y_range))

    @classmethod
    def from_config(cls, cfg: dict) -> "NonIsotropicPath":
        cfg = dict(cfg)
        kind = cfg.pop("kind", cls.kind)
        if kind != cls.kind:
            raise ValueError(f"not a non-isotropic path config (kind {kind!r}, expected {cls.kind!r})")
        return cls(**cfg)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "kind")
        return f"{type(self).__name__}({args})"


def inpainting_pseudo_observation(u: Tensor, y: Tensor, mask: Tensor, sigma, sigma_y
                                  ) -> tuple[Tensor, Tensor]:
    """Eqs. 9-10: ``(m, s)`` with ``p(x0 | u, y) = p(x0 | x0 + s ⊙ n = m)`` for ``u = x0 + sigma eps``
    and ``y = mask ⊙ (x0 + sigma_y n')``.

    Observed pixels: ``m = (sigma_y^2 u + sigma^2 y) / (sigma^2 + sigma_y^2)``,
    ``s = sigma sigma_y / sqrt(sigma^2 + sigma_y^2)``; missing pixels: ``m = u``, ``s = sigma``.
    ``sigma`` and ``sigma_y`` may be scalars or maps; ``sigma_y = 0`` gives ``m = y``, ``s = 0`` where
    observed. (In an SVD operator's coordinates the same holds per coordinate with
    ``y -> (U^T y)_j / s_j`` and ``sigma_y -> sigma_y / s_j``.)
    """
    sigma = torch.as_tensor(sigma).to(u)
    mask = mask.to(u)
    sigma_y = torch.as_tensor(sigma_y).to(u)
    den = (sigma ** 2 + sigma_y ** 2).clamp_min(1e-300)
    m_obs = (sigma_y ** 2 * u + sigma ** 2 * y) / den
    s_obs = sigma * sigma_y / den.sqrt()
    m = mask * m_obs + (1 - mask) * u
    s = mask * s_obs + (1 - mask) * sigma
    return m, s


# --- analytic priors ------------------------------------------------------------------
def mixture_log_density_map(prior: GaussianMixturePrior, u: Tensor, sigma: Tensor,
                            basis: Optional[Tensor] = None) -> Tensor:
    """``log p_sigma(u) = log sum_k w_k N(u; m_k, C_k + S)`` per row (B,), float64."""
    return _mixture_terms(prior, u, sigma, basis)[1]


def _noise_cov(u: Tensor, sigma: Tensor, basis: Optional[Tensor]) -> Tensor:
    """(B, d, d): ``diag(sigma^2)`` (pixel levels), or ``V diag(sigma^2) V^T`` for levels (B, d)
    along the orthonormal columns of ``basis`` (an operator's SVD basis)."""
    if basis is None:
        s2 = torch.as_tensor(sigma).to(u).expand_as(u).flatten(1).to(torch.float64) ** 2
        return torch.diag_embed(s2)
    V = basis.to(torch.float64)
    s2 = torch.as_tensor(sigma).to(torch.float64).reshape(-1, V.shape[1]).expand(u.shape[0], -1) ** 2
    return torch.einsum("dn,bn,en->bde", V, s2, V)


def _mixture_terms(prior: GaussianMixturePrior, u: Tensor, sigma: Tensor, basis: Optional[Tensor] = None):
    x = u.flatten(1).to(torch.float64)                                        # (B, d)
    means, covs = prior.means.to(x), prior.covs.to(x)                         # (K, d), (K, d, d)
    d = x.shape[1]
    S = covs[None] + _noise_cov(u, sigma, basis)[:, None]                     # (B, K, d, d)
    jitter = 1e-12 * torch.diagonal(S, dim1=-2, dim2=-1).mean(-1).clamp_min(1e-30)
    L = torch.linalg.cholesky(S + jitter[..., None, None] * torch.eye(d, dtype=x.dtype))
    r = x[:, None] - means[None]                                              # (B, K, d)
    z = torch.cholesky_solve(r.unsqueeze(-1), L).squeeze(-1)                  # (C_k + S)^{-1} (u - m_k)
    comp = means[None] + torch.einsum("kde,bke->bkd", covs, z)
    logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    logp = (torch.log(prior.weights.to(x))[None] - 0.5 * (r * z).sum(-1) - 0.5 * logdet
            - 0.5 * d * math.log(2 * math.pi))
    return comp, torch.logsumexp(logp, 1), torch.softmax(logp, 1)


def mixture_denoise_map(prior: GaussianMixturePrior, u: Tensor, sigma: Tensor,
                        basis: Optional[Tensor] = None) -> Tensor:
    """Closed-form ``E[x0 | u = x0 + noise]`` of a Gaussian mixture, with noise ``sigma ⊙ n`` per
    pixel or, given ``basis`` (d, d) orthonormal columns ``V``, ``V (sigma ⊙ n)`` (module docstring)."""
    prior.check_images(u, "u")
    comp, _, resp = _mixture_terms(prior, u, sigma, basis)
    return (resp[..., None] * comp).sum(1).to(u.dtype).view_as(u)


# --- the entry points -------------------------------------------------------------------
def has_denoise_map(prior) -> bool:
    """Whether ``prior`` has a non-isotropic denoiser (its own, or the closed form)."""
    return callable(getattr(prior, "denoise_map", None)) or isinstance(prior, GaussianMixturePrior)


def denoise_map(prior, u: Tensor, sigma: Tensor, basis: Optional[Tensor] = None) -> Tensor:
    """``E[x0 | u = x0 + sigma ⊙ n]`` of ``prior`` (counted in ``prior.evaluations``); with ``basis``
    the levels ``sigma`` (B, d) are along its columns instead of the pixels (closed form only).

    Raises ValueError naming the prior when it has no non-isotropic denoiser: an isotropic network
    does not give one (the reason the paper calls Eq. 9 intractable for ordinary priors).
    """
    own = getattr(prior, "denoise_map", None)
    if callable(own):
        if basis is not None:
            raise ValueError(f"{type(prior).__name__} has a per-pixel non-isotropic denoiser; noise along "
                             f"another basis (a non-diagonal operator's SVD) needs a Gaussian-mixture prior")
        return own(u, sigma)
    if isinstance(prior, GaussianMixturePrior):
        prior.evaluations.forward += int(u.shape[0])
        return mixture_denoise_map(prior, u, sigma, basis)
    raise ValueError(f"{type(prior).__name__} has no non-isotropic denoiser (a noise level per pixel); "
                     f"use a Gaussian (mixture) prior or a non-isotropic network prior "
                     f"(lit_ip.priors.nonisotropic_network)")


def score_map(prior, u: Tensor, sigma: Tensor) -> Tensor:
    """``grad_u log p_sigma(u) = (D(u, sigma) - u) / sigma^2`` (needs ``sigma > 0``)."""
    sigma = torch.as_tensor(sigma).to(u)
    if not bool((sigma > 0).all()):
        raise ValueError("the non-isotropic score needs sigma > 0 at every pixel")
    return (denoise_map(prior, u, sigma) - u) / sigma ** 2
