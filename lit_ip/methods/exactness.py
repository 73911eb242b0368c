"""Exact-posterior yardsticks for posterior samplers (used by tests and benchmarks).

With a Gaussian (mixture) prior, a linear operator and Gaussian noise the posterior is known in
closed form (:meth:`lit_ip.priors.analytic.GaussianMixturePrior.posterior`). A batch of draws for
one measurement is compared with it by

* ``mean``: ``||m_hat - mu|| / sqrt(tr Sigma)`` -- the error of the sample mean in units of the
  posterior spread (Monte Carlo floor about ``1 / sqrt(N)`` for ``N`` exact draws);
* ``cov``: ``||C_hat - Sigma||_F / ||Sigma||_F`` -- the relative error of the sample covariance
  (floor about ``sqrt((1 + (tr Sigma)^2 / ||Sigma||_F^2) / N)``);
* ``modes``: the fraction of draws assigned to each mixture component (by the largest posterior
  responsibility) against the posterior mixture weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ..operators.base import Operator
from ..operators.dense import DenseMatrixOperator
from ..operators.identity import Identity
from ..operators.inpainting import MaskInpainting
from ..operators.linalg import dense_matrix
from ..priors.analytic import GaussianMixturePrior, GaussianPrior


@dataclass
class ExactProblem:
    """A prior, an operator, one measurement ``y`` (shape ``(1, m)``), its noise and exact posterior."""

    prior: GaussianMixturePrior
    operator: Operator
    y: Tensor
    sigma: float
    posterior: GaussianMixturePrior

    def batch(self, n: int) -> Tensor:
        """``y`` repeated ``n`` times (``n`` independent draws for the same measurement)."""
        return self.y.expand(n, *self.y.shape[1:]).clone()


def random_covariance(d: int, seed: int, std_range: Sequence[float] = (0.04, 0.2)) -> Tensor:
    """``Q diag(lam) Q^T`` with a random rotation ``Q`` and standard deviations log-spaced in
    ``std_range`` (a non-isotropic covariance, float64)."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    std = torch.logspace(math.log10(std_range[0]), math.log10(std_range[1]), d, dtype=torch.float64)
    return Q @ torch.diag(std ** 2) @ Q.T


def random_matrix(m: int, d: int, seed: int) -> Tensor:
    """An ``(m, d)`` Gaussian matrix scaled to spectral norm 1 (as image operators: inpainting,
    super-resolution, blur and colorization all have ``||A|| <= 1``)."""
    g = torch.Generator().manual_seed(seed + 1)
    M = torch.randn(m, d, generator=g, dtype=torch.float64)
    return M / torch.linalg.matrix_norm(M, ord=2)


OPERATORS = ("dense", "inpainting", "denoising")


def make_operator(kind: str, image_shape, m: int, seed: int):
    """``"dense"``: an ``(m, d)`` random matrix (m < d); ``"inpainting"``: a fixed mask observing
    ``m`` of the ``d`` pixels; ``"denoising"``: the identity."""
    d = math.prod(image_shape)
    if kind == "dense":
        return DenseMatrixOperator(random_matrix(m, d, seed), image_shape)
    if kind == "inpainting":
        g = torch.Generator().manual_seed(seed + 4)
        mask = torch.zeros(d)
        mask[torch.randperm(d, generator=g)[:m]] = 1
        return MaskInpainting(mask.view(1, *image_shape), image_shape)
    if kind == "denoising":
        return Identity(image_shape)
    raise ValueError(f"unknown operator kind {kind!r}; known: {OPERATORS}")


def _problem(prior, op, y_of, sigma: float) -> ExactProblem:
    A = dense_matrix(op, prior.image_shape)
    y = y_of(A)
    return ExactProblem(prior, op, y.view(1, *op.output_shape(prior.image_shape)), sigma,
                        prior.posterior(A, y, sigma))


def gaussian_problem(image_shape=(1, 4, 4), m: int = 8, sigma: float = 0.05, seed: int = 0,
                     path=None, operator: str = "dense") -> ExactProblem:
    """Gaussian prior ``N(0.5, C)`` with a random non-isotropic ``C``, an operator of
    :func:`make_operator` and one noisy measurement of a prior draw."""
    d = math.prod(image_shape)
    prior = GaussianPrior(torch.full((d,), 0.5, dtype=torch.float64), random_covariance(d, seed),
                          image_shape, path)
    g = torch.Generator().manual_seed(seed + 2)
    x = prior.mean_vector() + torch.linalg.cholesky(prior.cov_matrix()) @ torch.randn(
        d, generator=g, dtype=torch.float64)
    op = make_operator(operator, image_shape, m, seed)
    return _problem(prior, op, lambda A: A @ x + sigma * torch.randn(A.shape[0], generator=g, dtype=torch.float64),
                    sigma)


def mixture_problem(image_shape=(1, 4, 4), m: int = 8, sigma: float = 0.05, seed: int = 0,
                    target_weight: float = 0.3, separation: float = 0.25, path=None,
                    operator: str = "dense") -> ExactProblem:
    """Two-component Gaussian mixture prior (equal weights, shared covariance, means ``0.5 +- u``
    along a random direction ``u`` of length ``separation * sqrt(d) / 2``) and ``y = A x_s`` with
    ``x_s`` on the segment between the means, placed (by bisection) so that the posterior weight of
    component 0 is ``target_weight``: a posterior with two modes of unequal, known weights."""
    d = math.prod(image_shape)
    g = torch.Generator().manual_seed(seed + 3)
    u = torch.randn(d, generator=g, dtype=torch.float64)
    u = u / u.norm() * separation * math.sqrt(d) / 2
    means = torch.stack([0.5 + u, 0.5 - u])
    C = random_covariance(d, seed, (0.03, 0.1))
    prior = GaussianMixturePrior(torch.ones(2), means, torch.stack([C, C]), image_shape, path)
    op = make_operator(operator, image_shape, m, seed)
    A = dense_matrix(op, image_shape)

    def weight0(s: float) -> float:
        return float(prior.posterior(A, A @ (s * means[0] + (1 - s) * means[1]), sigma).weights[0])

    lo, hi = 0.0, 1.0                      # the weight of component 0 increases with s
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if weight0(mid) < target_weight else (lo, mid)
    s = 0.5 * (lo + hi)
    return _problem(prior, op, lambda A: A @ (s * means[0] + (1 - s) * means[1]), sigma)


def moment_errors(samples: Tensor, posterior: GaussianMixturePrior) -> dict:
    """``{"mean": ..., "cov": ...}`` errors of a batch of draws against the exact posterior."""
    x = samples.flatten(1).to(torch.float64)
    mu, Sigma = posterior.mean_vector(), posterior.cov_matrix()
    C = torch.cov(x.T) if x.shape[0] > 1 else torch.zeros_like(Sigma)
    return dict(mean=float((x.mean(0) - mu).norm() / torch.trace(Sigma).sqrt()),
                cov=float(torch.linalg.matrix_norm(C - Sigma) / torch.linalg.matrix_norm(Sigma)))


def mode_weights(samples: Tensor, posterior: GaussianMixturePrior) -> Tensor:
    """Fraction of draws whose most probable posterior component is ``k``, for each ``k``."""
    x = samples.flatten(1).to(torch.float64)
    logp = []
    for k in range(len(posterior.weights)):
        L = torch.linalg.cholesky(posterior.covs[k] + 1e-12 * torch.eye(x.shape[1], dtype=torch.float64))
        z = torch.linalg.solve_triangular(L, (x - posterior.means[k]).T, upper=False)
        logp.append(torch.log(posterior.weights[k]) - 0.5 * (z ** 2).sum(0) - torch.log(torch.diagonal(L)).sum())
    k = torch.stack(logp, 1).argmax(1)
    return torch.bincount(k, minlength=len(posterior.weights)).to(torch.float64) / x.shape[0]


def draws(method, problem: ExactProblem, n: int, seed: int = 0) -> Tensor:
    """``n`` outputs of ``method`` for ``problem``'s measurement (sample indices ``0..n-1``, float64)."""
    from ..operators.noise import GaussianNoise
    from ..rng import SampleRNG
    rng = SampleRNG.for_indices(range(n), seed, dtype=torch.float64)
    return method.sample(problem.prior, problem.operator, problem.batch(n), rng, GaussianNoise(problem.sigma))


def posterior_as_prior(problem: ExactProblem) -> GaussianMixturePrior:
    """The exact posterior as a prior on the same path: an unconditional sampler run on it shows the
    error floor of the time grid (what any method with the exact posterior score would get)."""
    post = problem.posterior
    return GaussianMixturePrior(post.weights, post.means, post.covs, post.image_shape, problem.prior.path)


def draw_exact(posterior: GaussianMixturePrior, n: int, seed: int = 0, rng=None) -> Tensor:
    """``n`` exact posterior draws (reference for the Monte Carlo floor of the errors)."""
    from ..rng import SampleRNG
    rng = rng or SampleRNG.for_indices(range(n), seed, dtype=torch.float64)
    return posterior.sample(n, rng).to(torch.float64)


def spread(samples: Tensor, posterior: GaussianMixturePrior) -> float:
    """``sqrt(tr Cov(samples) / tr Sigma)``: 1 for posterior draws, about 0 for a point estimate."""
    x = samples.flatten(1).to(torch.float64)
    return float((torch.trace(torch.cov(x.T)) / torch.trace(posterior.cov_matrix())).sqrt())


def distance_to_mean(samples: Tensor, posterior: GaussianMixturePrior) -> float:
    """RMS over draws of ``||x - mu|| / sqrt(tr Sigma)``: about 1 for posterior draws (plus the mean
    error), 0 for the posterior mean itself -- the yardstick of point estimates."""
    x = samples.flatten(1).to(torch.float64)
    d2 = ((x - posterior.mean_vector()) ** 2).sum(1).mean()
    return float((d2 / torch.trace(posterior.cov_matrix())).sqrt())


def residual(samples: Tensor, problem: ExactProblem) -> float:
    """RMS of ``A x - y`` per measurement entry, averaged over the draws (compare with ``sigma``)."""
    r = (problem.operator(samples.to(torch.float64)) - problem.y).flatten(1)
    return float((r ** 2).mean(1).sqrt().mean())


__all__ = ["ExactProblem", "make_operator", "gaussian_problem", "mixture_problem", "moment_errors", "mode_weights",
           "draws", "posterior_as_prior", "draw_exact", "spread", "distance_to_mean", "residual", "random_covariance", "random_matrix"]
