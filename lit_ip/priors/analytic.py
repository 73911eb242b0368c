"""Exact analytic priors with closed-form diffused denoisers.

For ``x0 ~ N(m, C)`` and ``x_t = a x0 + b eps`` (Tweedie / Gaussian conditioning):

    E[x0 | x_t] = m + a C (a^2 C + b^2 I)^{-1} (x_t - a m),
    Cov[x0 | x_t] = C - a^2 C (a^2 C + b^2 I)^{-1} C.

A Gaussian mixture mixes the component estimates with responsibilities
``pi_k(x_t) ~ w_k N(x_t; a m_k, a^2 C_k + b^2 I)``; the empirical distribution of a finite set is a
mixture of Diracs (``C_k = 0``).

Covariances keep the structure they are given, so a call costs what the structure needs:

=====================  =======================================  ==========================
``covs`` given as      meaning                                  denoise cost (batch B)
=====================  =======================================  ==========================
``(K,)`` or a float    isotropic ``C_k = v_k I``                ``O(B K d)``
``(K, d)``             diagonal ``C_k = diag(v_k)``             ``O(B K d)``
``(K, d, d)`` shared   all ``C_k`` equal (one eigenbasis)       ``O(B d^2 + B K d)``
``(K, d, d)``          dense, one eigenbasis each               ``O(B K d^2)``
:meth:`low_rank`       ``C_k = c_k I + Q_k diag(l_k - c_k) Q_k^T``  ``O(B K d r)``
=====================  =======================================  ==========================

Internally a non-diagonal covariance is held in the *eigen form* ``C_k = c_k I + Q_k diag(l_k - c_k)
Q_k^T`` (``Q_k`` orthonormal ``d x r``, eigenvalues ``l_k`` on its span and the floor ``c_k`` on the
complement; dense is ``r = d, c = 0``, isotropic is ``r = 0``), in which ``a^2 C + b^2 I`` is
diagonal. With a linear operator ``A`` and Gaussian noise ``sigma`` the posterior is a mixture of
the same family (:meth:`GaussianMixturePrior.posterior`); an isotropic or low-rank prior gives a
low-rank posterior (rank ``r + m``), so the exact posterior of a ``d = 800`` problem never forms a
``d x d`` matrix. :attr:`covs` builds dense matrices on demand (tests, small ``d``).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor

from .base import Prior
from .paths import NoisePath, VPPath

#: rows of ``(rows, K, d)`` temporaries per chunk of the denoiser (bounds its working memory)
_CHUNK_ELEMENTS = 1 << 22


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
    return mean, cov, _log_evidence(r, S)


def _log_evidence(r: Tensor, S: Tensor) -> Tensor:
    """``log N(r; 0, S)`` per row of ``r``."""
    L = torch.linalg.cholesky(S)
    z = torch.cholesky_solve(r.T, L).T
    logdet = 2 * torch.log(torch.diagonal(L)).sum()
    return -0.5 * ((r * z).sum(1) + logdet + S.shape[0] * math.log(2 * math.pi))


class GaussianMixturePrior(Prior):
    """Gaussian mixture ``sum_k w_k N(m_k, C_k)`` over images of ``image_shape``.

    Args:
        weights: (K,) non-negative, normalised internally.
        means: (K, d) with ``d = prod(image_shape)``.
        covs: (K, d, d) symmetric positive semi-definite; or (K, d) diagonal variances; or (K,) /
            a float: isotropic variances (see the module docstring for the costs).
        image_shape: shape of one image.
        path: noise path (default DDPM linear, 1000 steps).
    """

    def __init__(self, weights: Tensor, means: Tensor, covs, image_shape: Sequence[int],
                 path: Optional[NoisePath] = None):
        means = torch.as_tensor(means, dtype=torch.float64)
        weights = torch.as_tensor(weights, dtype=torch.float64)
        covs = torch.as_tensor(covs, dtype=torch.float64)
        d = int(math.prod(image_shape))
        K = weights.shape[0]
        if means.shape != (K, d):
            raise ValueError(f"means must be ({K}, {d}) for image shape {tuple(image_shape)}; "
                             f"got {tuple(means.shape)}")
        if covs.ndim == 0:
            covs = covs.expand(K)
        if covs.shape == (K,):                                   # isotropic: eigen form, r = 0
            if (covs < 0).any():
                raise ValueError("isotropic variances must be >= 0")
            parts = dict(floor=covs.clone(), Q=means.new_zeros(1, d, 0), lam=means.new_zeros(K, 0))
        elif covs.shape == (K, d):
            if (covs < 0).any():
                raise ValueError("diagonal variances must be >= 0")
            parts = dict(diag=covs.clone())
        elif covs.shape == (K, d, d):
            covs = 0.5 * (covs + covs.transpose(1, 2))
            shared = bool((covs == covs[:1]).all())
            lam, Q = torch.linalg.eigh(covs[:1] if shared else covs)
            if (lam < -1e-8 * lam.abs().max().clamp_min(1)).any():
                raise ValueError("a covariance is not positive semi-definite")
            lam = lam.clamp_min(0)
            parts = dict(floor=means.new_zeros(K), Q=Q, lam=lam.expand(K, d).clone())
        else:
            raise ValueError(f"covs must be ({K}, {d}, {d}) dense, ({K}, {d}) diagonal or ({K},) isotropic "
                             f"for image shape {tuple(image_shape)}; got {tuple(covs.shape)}")
        self._init_parts(weights, means, parts, image_shape, path)

    @classmethod
    def low_rank(cls, weights, means, basis, eigenvalues, floor, image_shape, path=None) -> "GaussianMixturePrior":
        """``C_k = floor_k I + basis_k diag(eigenvalues_k - floor_k) basis_k^T``: ``basis`` (K or 1, d, r)
        with orthonormal columns (1 = shared by all components), ``eigenvalues`` (K, r) the variances
        along them (>= 0), ``floor`` (K,) the variance on the orthogonal complement."""
        means = torch.as_tensor(means, dtype=torch.float64)
        weights = torch.as_tensor(weights, dtype=torch.float64)
        Q = torch.as_tensor(basis, dtype=torch.float64)
        lam = torch.as_tensor(eigenvalues, dtype=torch.float64)
        floor = torch.as_tensor(floor, dtype=torch.float64).expand(len(weights)).clone()
        K, d = means.shape
        if Q.ndim != 3 or Q.shape[0] not in (1, K) or Q.shape[1] != d or lam.shape != (K, Q.shape[2]):
            raise ValueError(f"basis must be (1 or {K}, {d}, r) and eigenvalues ({K}, r); got "
                             f"{tuple(Q.shape)} and {tuple(lam.shape)}")
        eye = torch.eye(Q.shape[2], dtype=Q.dtype)
        if not torch.allclose(Q.transpose(1, 2) @ Q, eye.expand_as(Q.transpose(1, 2) @ Q), atol=1e-8):
            raise ValueError("the low-rank basis must have orthonormal columns")
        if (lam < -1e-12).any() or (floor < 0).any():
            raise ValueError("variances of a low-rank covariance must be >= 0")
        obj = cls.__new__(cls)
        GaussianMixturePrior._init_parts(obj, weights, means, dict(floor=floor, Q=Q, lam=lam.clamp_min(0)),
                                         image_shape, path)
        return obj

    def _init_parts(self, weights, means, parts, image_shape, path):
        if (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("mixture weights must be non-negative with a positive sum")
        w = weights / weights.sum()
        mean = (w[:, None] * means).sum(0)
        var = float((w * (self._diagonals(parts).mean(1) + ((means - mean) ** 2).mean(1))).sum())
        Prior.__init__(self, path or VPPath(), image_shape, data_mean=float(mean.mean()), data_var=var)
        self.register_buffer("weights", w)
        self.register_buffer("means", means)
        self.kind = "diag" if "diag" in parts else "eigen"
        for name, value in parts.items():
            self.register_buffer(name, value)

    @staticmethod
    def _diagonals(parts) -> Tensor:
        """(K, d) diagonals of the covariances."""
        if "diag" in parts:
            return parts["diag"]
        Q, lam, c = parts["Q"], parts["lam"], parts["floor"]
        return c[:, None] + torch.einsum("kdr,kr->kd", (Q ** 2).expand(len(c), -1, -1), lam - c[:, None])

    @property
    def rank(self) -> int:
        """Columns of the eigenbasis (``d`` for dense covariances, 0 for isotropic or diagonal)."""
        return 0 if self.kind == "diag" else int(self.Q.shape[2])

    @property
    def covs(self) -> Tensor:
        """Dense (K, d, d) covariances, built on demand (cached while the buffers are unchanged)."""
        parts = (self.diag,) if self.kind == "diag" else (self.Q, self.lam, self.floor)
        key = tuple((t.data_ptr(), t.device, t.dtype) for t in parts)
        cached = self.__dict__.get("_dense_covs")
        if cached is None or cached[0] != key:
            cached = self.__dict__["_dense_covs"] = (key, self._dense_covs())
        return cached[1]

    def _dense_covs(self) -> Tensor:
        if self.kind == "diag":
            return torch.diag_embed(self.diag)
        K, d = self.means.shape
        Q = self.Q.expand(K, -1, -1)
        eye = torch.eye(d, dtype=self.means.dtype, device=self.means.device)
        return (self.floor[:, None, None] * eye
                + torch.einsum("kdr,kr,ker->kde", Q, self.lam - self.floor[:, None], Q))

    # --- the denoiser ------------------------------------------------------
    def _components(self, x: Tensor, a, b, want_mean: bool = True):
        """Log responsibilities ``log w_k N(x; a m_k, a^2 C_k + b^2 I)`` (B, K) and, if asked,
        ``sum_k pi_k E[x0 | x, k]`` (B, d), in chunks of rows."""
        K, d = self.means.shape
        rows = max(1, _CHUNK_ELEMENTS // (K * d))
        logps, x0s = [], []
        for xc in x.split(rows):
            logp, comp = self._chunk(xc, a, b, want_mean)
            logps.append(logp)
            x0s.append(comp)
        return torch.cat(logps), (torch.cat(x0s) if want_mean else None)

    def _chunk(self, x, a, b, want_mean):
        m, d = self.means, self.means.shape[1]
        diff = x[:, None, :] - a * m[None]                          # (B, K, d)
        if self.kind == "diag":
            var = a ** 2 * self.diag + b ** 2                       # (K, d)
            quad, logdet = (diff ** 2 / var).sum(-1), torch.log(var).sum(-1)
        else:
            Q, lam, c, r = self.Q, self.lam, self.floor, self.rank
            if Q.shape[0] == 1:                                     # shared basis: project once
                proj = (x @ Q[0])[:, None] - a * (m @ Q[0])[None]   # (B, K, r)
            else:
                proj = torch.einsum("bkd,kdr->bkr", diff, Q)
            vpar, vperp = a ** 2 * lam + b ** 2, a ** 2 * c + b ** 2
            quad = (proj ** 2 / vpar).sum(-1)
            if r < d:
                perp2 = ((diff ** 2).sum(-1) - (proj ** 2).sum(-1)).clamp_min(0)
                quad = quad + perp2 / vperp
            logdet = torch.log(vpar).sum(-1) + ((d - r) * torch.log(vperp) if r < d else 0)
        logp = torch.log(self.weights)[None] - 0.5 * quad - 0.5 * logdet[None]
        if not want_mean:
            return logp, None
        resp = torch.softmax(logp, dim=1)                           # (B, K)
        x0 = resp @ m
        if self.kind == "diag":
            x0 = x0 + (resp[..., None] * (a * self.diag / var)[None] * diff).sum(1)
        else:
            gperp = torch.where(c > 0, a * c / vperp.clamp_min(1e-300), torch.zeros_like(c))   # (K,)
            if r < d and bool((c > 0).any()):
                x0 = x0 + (resp * gperp) @ (-a * m) + (resp @ gperp)[:, None] * x
            coef = resp[..., None] * (a * lam / vpar - gperp[:, None]) * proj
            x0 = x0 + (coef.sum(1) @ Q[0].T if Q.shape[0] == 1 else torch.einsum("bkr,kdr->bd", coef, Q))
        return logp, x0

    def denoise(self, x_t, t):
        self.check_images(x_t, "x_t")
        a, b = self.path.coefficients(torch.as_tensor(t))
        a, b = a.to(torch.float64), b.to(torch.float64)
        _, x0 = self._components(_flat(x_t).to(torch.float64), a, b)
        return x0.to(x_t.dtype).view_as(x_t)

    def component_log_density(self, x: Tensor) -> Tensor:
        """``log w_k + log N(x; m_k, C_k)`` (B, K) of clean images ``x`` (needs non-singular ``C_k``)."""
        one = torch.ones((), dtype=torch.float64)
        logp = self._components(_flat(x).to(torch.float64), one, 0 * one, want_mean=False)[0]
        return logp - 0.5 * self.means.shape[1] * math.log(2 * math.pi)

    # --- exact quantities -------------------------------------------------
    def sample(self, n: int, rng) -> Tensor:
        """``n`` exact draws (rows from ``rng``, a :class:`~lit_ip.rng.SampleRNG`)."""
        u = rng.rand((n, 1)).to(torch.float64)[:, 0]
        k = torch.searchsorted(torch.cumsum(self.weights, 0), u).clamp(max=len(self.weights) - 1)
        z = rng.randn((n, self.means.shape[1])).to(torch.float64)
        if self.kind == "diag":
            x = self.means[k] + self.diag[k].sqrt() * z
        elif self.rank == self.means.shape[1] and self.Q.shape[0] > 1:  # dense, per component:
            x = self.means[k].clone()                                   # no (n, d, d) gather
            for j in range(len(self.weights)):
                rows = k == j
                x[rows] += (self.lam[j].sqrt() * z[rows]) @ self.Q[j].T
        elif self.rank == self.means.shape[1]:                      # dense, shared eigenbasis
            x = self.means[k] + torch.einsum("de,ne->nd", self.Q[0], self.lam[k].sqrt() * z)
        else:
            sc = self.floor[k].sqrt()
            Q = self.Q[k] if self.Q.shape[0] > 1 else self.Q[0].expand(n, -1, -1)
            zq = torch.einsum("ndr,nd->nr", Q, z)
            x = self.means[k] + sc[:, None] * z + torch.einsum(
                "ndr,nr->nd", Q, (self.lam[k].sqrt() - sc[:, None]) * zq)
        return x.float().view(n, *self.image_shape)

    def mean_vector(self) -> Tensor:
        return (self.weights[:, None] * self.means).sum(0)

    def cov_matrix(self) -> Tensor:
        m = self.mean_vector()
        d = self.means - m
        w = self.weights
        if self.kind == "diag":
            within = torch.diag(w @ self.diag)
        else:
            K = len(w)
            Q = self.Q.expand(K, -1, -1)
            within = (w @ self.floor) * torch.eye(m.shape[0], dtype=m.dtype, device=m.device) + torch.einsum(
                "kdr,kr,ker->de", Q, w[:, None] * (self.lam - self.floor[:, None]), Q)
        return within + torch.einsum("k,kd,ke->de", w, d, d)

    def posterior(self, A: Tensor, y: Tensor, sigma: float) -> "GaussianMixturePrior":
        """Exact posterior given one measurement ``y`` (shape (m,)) of ``y = A x + sigma n``.

        Isotropic and low-rank priors (``r + m < d``) stay low-rank: the posterior covariance is
        ``c I`` plus a term on ``span(Q_k, A^T)``; others are conditioned densely."""
        A = torch.as_tensor(A, dtype=torch.float64)
        y = torch.as_tensor(y, dtype=torch.float64).reshape(1, -1)
        d = self.means.shape[1]
        if self.kind == "eigen" and self.rank + A.shape[0] < d:
            return self._low_rank_posterior(A, y, sigma)
        means, covs, logw = [], [], []
        covs_in = self.covs
        for k in range(len(self.weights)):
            mk, Ck, ll = _gauss_condition(self.means[k:k + 1], covs_in[k], A, y, sigma)
            means.append(mk[0]); covs.append(Ck); logw.append(torch.log(self.weights[k]) + ll[0])
        w = torch.softmax(torch.stack(logw), 0)
        return type(self)._from_parts(w, torch.stack(means), torch.stack(covs), self.image_shape, self.path)

    def _low_rank_posterior(self, A, y, sigma):
        K, d = self.means.shape
        m_rows = A.shape[0]
        eye_m = torch.eye(m_rows, dtype=A.dtype)
        shared = self.Q.shape[0] == 1
        basis = None
        Qs, lams, means, logw = [], [], [], []
        for k in range(K):
            Q, c, l = self.Q[0 if shared else k], self.floor[k], self.lam[k]
            CAt = c * A.T + Q @ ((l - c)[:, None] * (Q.T @ A.T))          # C A^T (d, m)
            S = A @ CAt + sigma ** 2 * eye_m
            r = y[0] - A @ self.means[k]
            means.append(self.means[k] + CAt @ torch.linalg.solve(S, r))
            logw.append(torch.log(self.weights[k]) + _log_evidence(r[None], S)[0])
            if basis is None or not shared:                                 # span(Q_k, A^T)
                basis = torch.linalg.qr(torch.cat([Q, A.T], 1))[0]
            BQ = basis.T @ Q
            core = c * torch.eye(basis.shape[1], dtype=A.dtype) + BQ @ ((l - c)[:, None] * BQ.T)
            BCAt = basis.T @ CAt
            core = core - BCAt @ torch.linalg.solve(S, BCAt.T)
            mu, P = torch.linalg.eigh(0.5 * (core + core.T))
            Qs.append(basis @ P); lams.append(mu.clamp_min(0))
        w = torch.softmax(torch.stack(logw), 0)
        family = GaussianPrior if isinstance(self, GaussianPrior) else GaussianMixturePrior
        return family.low_rank(w, torch.stack(means), torch.stack(Qs), torch.stack(lams),
                               self.floor, self.image_shape, self.path)

    @classmethod
    def _from_parts(cls, w, means, covs, shape, path):
        return GaussianMixturePrior(w, means, covs, shape, path)


class GaussianPrior(GaussianMixturePrior):
    """A Gaussian ``N(mean, cov)`` (a one-component mixture); ``cov`` (d, d) dense, (d,) diagonal or
    a float (isotropic)."""

    def __init__(self, mean: Tensor, cov, image_shape: Sequence[int],
                 path: Optional[NoisePath] = None):
        cov = torch.as_tensor(cov, dtype=torch.float64)
        super().__init__(torch.ones(1), torch.as_tensor(mean)[None], cov[None], image_shape, path)

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
