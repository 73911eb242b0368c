"""Exact analytic priors with closed-form diffused denoisers.

For ``x0 ~ N(m, C)`` and ``x_t = a x0 + b eps`` (Tweedie / Gaussian conditioning):

    E[x0 | x_t] = m + a C (a^2 C + b^2 I)^{-1} (x_t - a m),
    Cov[x0 | x_t] = C - a^2 C (a^2 C + b^2 I)^{-1} C,

computed in the eigenbasis ``C = Q diag(lam) Q^T``. A Gaussian mixture mixes the
component estimates with responsibilities ``pi_k(x_t) ~ w_k N(x_t; a m_k, a^2 C_k + b^2 I)``;
the empirical distribution of a finite set is a mixture of Diracs (``C_k = 0``).

With a linear operator ``A`` and Gaussian noise ``sigma`` the posterior is again of
the same family (:meth:`GaussianPrior.posterior`, :meth:`GaussianMixturePrior.posterior`),
which is what the exact-posterior tests compare every method against.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor

from .base import Prior
from .paths import NoisePath, VPPath


def _flat(x: Tensor) -> Tensor:
    return x.flatten(1)


def _gauss_condition(m: Tensor, C: Tensor, A: Tensor, y: Tensor, sigma: float):
    """Posterior of ``x ~ N(m, C)`` given ``y = A x + sigma n``: mean (B, d), cov (d, d), log evidence (B,)."""
    S = A @ C @ A.T + sigma ** 2 * torch.eye(A.shape[0], dtype=C.dtype)
    K = torch.linalg.solve(S, A @ C).T  # C A^T S^{-1}
    r = y - m @ A.T
    mean = m + r @ K.T
    cov = C - K @ A @ C
    cov = 0.5 * (cov + cov.T)
    L = torch.linalg.cholesky(S)
    z = torch.cholesky_solve(r.T, L).T
    logdet = 2 * torch.log(torch.diagonal(L)).sum()
    loglik = -0.5 * ((r * z).sum(1) + logdet + A.shape[0] * math.log(2 * math.pi))
    return mean, cov, loglik


class GaussianMixturePrior(Prior):
    """Gaussian mixture ``sum_k w_k N(m_k, C_k)`` over images of ``image_shape``.

    Args:
        weights: (K,) non-negative, normalised internally.
        means: (K, d) with ``d = prod(image_shape)``.
        covs: (K, d, d) symmetric positive semi-definite.
        image_shape: shape of one image.
        path: noise path (default DDPM linear, 1000 steps).
    """

    def __init__(self, weights: Tensor, means: Tensor, covs: Tensor, image_shape: Sequence[int],
                 path: Optional[NoisePath] = None):
        means = torch.as_tensor(means, dtype=torch.float64)
        covs = torch.as_tensor(covs, dtype=torch.float64)
        weights = torch.as_tensor(weights, dtype=torch.float64)
        d = int(math.prod(image_shape))
        K = weights.shape[0]
        if means.shape != (K, d) or covs.shape != (K, d, d):
            raise ValueError(f"means must be ({K}, {d}) and covs ({K}, {d}, {d}) for image shape "
                             f"{tuple(image_shape)}; got {tuple(means.shape)} and {tuple(covs.shape)}")
        if (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("mixture weights must be non-negative with a positive sum")
        covs = 0.5 * (covs + covs.transpose(1, 2))
        lam, Q = torch.linalg.eigh(covs)
        if (lam < -1e-8 * lam.abs().max().clamp_min(1)).any():
            raise ValueError("a covariance is not positive semi-definite")
        mean = (weights[:, None] * means).sum(0) / weights.sum()
        var = float((weights * (torch.diagonal(covs, dim1=1, dim2=2).mean(1)
                                + ((means - mean) ** 2).mean(1))).sum() / weights.sum())
        super().__init__(path or VPPath(), image_shape, data_mean=float(mean.mean()), data_var=var)
        self.register_buffer("weights", weights / weights.sum())
        self.register_buffer("means", means)
        self.register_buffer("covs", covs)
        self.register_buffer("lam", lam.clamp_min(0))
        self.register_buffer("Q", Q)

    # --- the denoiser ------------------------------------------------------
    def denoise(self, x_t, t):
        self.check_images(x_t, "x_t")
        a, b = self.path.coefficients(torch.as_tensor(t))
        a, b = a.to(torch.float64), b.to(torch.float64)
        x = _flat(x_t).to(torch.float64)                     # (B, d)
        diff = x[:, None, :] - a * self.means[None]           # (B, K, d)
        proj = torch.einsum("bkd,kde->bke", diff, self.Q)     # Q^T (x - a m) per component
        var = a ** 2 * self.lam + b ** 2                      # (K, d) eigenvalues of a^2 C + b^2 I
        comp = self.means[None] + torch.einsum("kde,bke->bkd", self.Q, a * self.lam / var * proj)
        logp = (torch.log(self.weights)[None] - 0.5 * (proj ** 2 / var).sum(-1)
                - 0.5 * torch.log(var).sum(-1)[None])
        resp = torch.softmax(logp, dim=1)                    # (B, K)
        x0 = (resp[..., None] * comp).sum(1)
        return x0.to(x_t.dtype).view_as(x_t)

    # --- exact quantities -------------------------------------------------
    def sample(self, n: int, rng) -> Tensor:
        """``n`` exact draws (rows from ``rng``, a :class:`~lit_ip.rng.SampleRNG`)."""
        u = rng.rand((n, 1)).to(torch.float64)[:, 0]
        k = torch.searchsorted(torch.cumsum(self.weights, 0), u).clamp(max=len(self.weights) - 1)
        z = rng.randn((n, self.means.shape[1])).to(torch.float64)
        x = self.means[k].clone()
        for j in range(len(self.weights)):                 # per component: no (n, d, d) gather
            rows = k == j
            x[rows] += (self.lam[j].sqrt() * z[rows]) @ self.Q[j].T
        return x.float().view(n, *self.image_shape)

    def mean_vector(self) -> Tensor:
        return (self.weights[:, None] * self.means).sum(0)

    def cov_matrix(self) -> Tensor:
        m = self.mean_vector()
        d = self.means - m
        return (self.weights[:, None, None] * (self.covs + d[:, :, None] * d[:, None, :])).sum(0)

    def posterior(self, A: Tensor, y: Tensor, sigma: float) -> "GaussianMixturePrior":
        """Exact posterior given one measurement ``y`` (shape (m,)) of ``y = A x + sigma n``."""
        A = torch.as_tensor(A, dtype=torch.float64)
        y = torch.as_tensor(y, dtype=torch.float64).reshape(1, -1)
        means, covs, logw = [], [], []
        for k in range(len(self.weights)):
            mk, Ck, ll = _gauss_condition(self.means[k:k + 1], self.covs[k], A, y, sigma)
            means.append(mk[0]); covs.append(Ck); logw.append(torch.log(self.weights[k]) + ll[0])
        w = torch.softmax(torch.stack(logw), 0)
        return type(self)._from_parts(w, torch.stack(means), torch.stack(covs), self.image_shape, self.path)

    @classmethod
    def _from_parts(cls, w, means, covs, shape, path):
        return GaussianMixturePrior(w, means, covs, shape, path)


class GaussianPrior(GaussianMixturePrior):
    """A Gaussian ``N(mean, cov)`` (a one-component mixture)."""

    def __init__(self, mean: Tensor, cov: Tensor, image_shape: Sequence[int],
                 path: Optional[NoisePath] = None):
        super().__init__(torch.ones(1), torch.as_tensor(mean)[None], torch.as_tensor(cov)[None],
                         image_shape, path)

    @classmethod
    def _from_parts(cls, w, means, covs, shape, path):
        return GaussianPrior(means[0], covs[0], shape, path)


class EmpiricalPrior(Prior):
    """The empirical distribution of a finite set of images (a mixture of Diracs):

        E[x0 | x_t] = sum_i softmax_i(-|x_t - a x_i|^2 / (2 b^2)) x_i.

    Its exact denoiser memorises; it is the reference point for measuring memorisation
    of trained priors.
    """

    def __init__(self, images: Tensor, path: Optional[NoisePath] = None):
        images = torch.as_tensor(images, dtype=torch.float32)
        super().__init__(path or VPPath(), images.shape[1:], data_mean=float(images.mean()),
                         data_var=float(images.var(0).mean()))
        self.register_buffer("images", images.flatten(1))

    def denoise(self, x_t, t):
        self.check_images(x_t, "x_t")
        a, b = self.coefficients(t, x_t)
        x = _flat(x_t)
        d2 = torch.cdist(x, a * self.images.to(x)) ** 2
        resp = torch.softmax(-d2 / (2 * b ** 2), dim=1)
        return (resp @ self.images.to(x)).view_as(x_t)

    def sample(self, n: int, rng) -> Tensor:
        k = (rng.rand((n, 1))[:, 0] * self.images.shape[0]).long().clamp(max=self.images.shape[0] - 1)
        return self.images[k].view(n, *self.image_shape).clone()
