"""Exact-posterior problems and metrics: the one yardstick of the tests and the benchmarks.

A Gaussian (mixture) prior, a linear operator ``A`` and Gaussian noise have a closed-form
(mixture) posterior (:meth:`lit_ip.priors.analytic.GaussianMixturePrior.posterior`). A batch of
``N`` draws of a method for one measurement is compared with it in whitened coordinates
``z = L^{-1} (x - mu)`` (``Sigma = L L^T`` the posterior covariance), so errors are scale-free and
their values for exact draws are known in closed form (:func:`gaussian_tolerances`):

* ``mean = |mean_N(z)|``: ``N mean^2 ~ chi^2_d`` for exact draws;
* ``cov = |Cov_N(z) - I|_F``: ``N cov^2`` has mean about ``d (d + 1)``, standard deviation
  ``2 sqrt(d (d + 1))`` for exact draws;
* ``sw``: sliced Wasserstein-2 distance between the whitened draws and exact posterior draws
  (:func:`sliced_wasserstein`; any posterior, including mixtures);
* ``modes`` (mixtures): total variation between the fractions of draws assigned to each
  posterior component (highest responsibility) and the same fractions of exact draws;
* point estimates: ``dist`` (RMS ``|x - mu| / sqrt(tr Sigma)``, about 1 for posterior draws),
  ``spread`` (``sqrt(tr Cov / tr Sigma)``, about 0 for a point estimate) and ``res`` (RMS of
  ``A x - y``, about ``sigma`` for the truth).

Problems are built in float64 from a seed for any dimension ``d = C H W``, number of
measurements ``m``, operator kind (:data:`OPERATORS`) and number of mixture components, so a
growing-dimension study reuses them unchanged. Draws use :class:`lit_ip.rng.BatchRNG` (one
generator per batch: only independence matters here).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..operators.blur import GaussianBlur
from ..operators.dense import DenseMatrixOperator
from ..operators.identity import Identity
from ..operators.inpainting import MaskInpainting
from ..operators.linalg import dense_matrix
from ..operators.noise import GaussianNoise
from ..priors.analytic import GaussianMixturePrior, GaussianPrior
from ..priors.paths import RectifiedFlowPath, VPPath
from ..rng import BatchRNG

#: paths of networks trained on [-1, 1] data, seen in [0, 1] units (docs/architecture.md, Units)
PATHS = {"vp": lambda: VPPath().scaled(0.5), "rf": lambda: RectifiedFlowPath().scaled(0.5)}
#: operator kinds of :func:`make_operator`
OPERATORS = ("dense", "identity", "inpainting", "blur")
N_REF = 40000                  # exact draws behind the reference mode fractions / SW samples


@dataclass
class ExactProblem:
    """A prior, an operator, one measurement ``y`` (shape ``(1, m)``), its noise level, the exact
    posterior and ``ref``: ``N_REF`` exact posterior draws (float64, flattened)."""

    prior: GaussianMixturePrior
    operator: object
    y: Tensor
    sigma: float
    posterior: GaussianMixturePrior
    ref: Tensor = field(repr=False)
    ref_modes: Tensor = field(repr=False, default=None)

    def __post_init__(self):
        if self.ref_modes is None:
            self.ref_modes = mode_fractions(self.ref, self.posterior)

    @property
    def dim(self) -> int:
        return self.ref.shape[1]

    def batch(self, n: int) -> Tensor:
        """``y`` repeated ``n`` times (``n`` independent draws for the same measurement)."""
        return self.y.expand(n, *self.y.shape[1:]).clone()

    def with_prior(self, prior: GaussianMixturePrior) -> "ExactProblem":
        """The same measurement and posterior with another prior (e.g. :func:`posterior_as_prior`)."""
        return ExactProblem(prior, self.operator, self.y, self.sigma, self.posterior, self.ref, self.ref_modes)


def image_shape(d: int) -> tuple:
    """``(1, s, s)`` for a square ``d`` and ``(1, 1, d)`` otherwise."""
    s = math.isqrt(d)
    return (1, s, s) if s * s == d else (1, 1, d)


def rotated_cov(g: torch.Generator, d: int, lo: float, hi: float) -> Tensor:
    """Random rotation of ``diag(logspace(lo, hi))``: a non-isotropic covariance."""
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return Q @ torch.diag(torch.logspace(lo, hi, d, dtype=torch.float64)) @ Q.T


def make_operator(kind: str, shape, m: int, g: torch.Generator):
    """``dense``: an ``(m, d)`` Gaussian matrix / sqrt(d); ``identity`` (denoising, m = d);
    ``inpainting``: ``m`` of the ``d`` pixels observed; ``blur``: Gaussian blur, sigma 1 px,
    reflect boundary (m = d, ill-conditioned). The dense matrix is always drawn from ``g`` so
    the rest of a problem does not depend on ``kind``."""
    d = math.prod(shape)
    M = torch.randn(m, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    if kind == "dense":
        return DenseMatrixOperator(M, shape)
    if kind == "identity":
        return Identity(shape)
    if kind == "inpainting":
        mask = torch.zeros(d, dtype=torch.float64)
        mask[torch.randperm(d, generator=g)[:m]] = 1
        return MaskInpainting(mask.view(1, *shape[1:]), shape)
    if kind == "blur":
        return GaussianBlur(1.0, 3, shape)
    raise ValueError(f"unknown operator kind {kind!r}; known: {OPERATORS}")


def exact_problem(prior, op, y: Tensor, sigma: float, n_ref: int = N_REF) -> ExactProblem:
    """The :class:`ExactProblem` of ``prior``, operator ``op`` and measurement ``y`` (flat or
    ``(1, m)``) with ``n_ref`` reference exact draws (``BatchRNG(n_ref, 7)``)."""
    A = dense_matrix(op, prior.image_shape)
    y = y.reshape(-1)
    post = prior.posterior(A, y, sigma)
    ref = post.sample(n_ref, BatchRNG(n_ref, 7)).double().flatten(1)
    return ExactProblem(prior, op, y.view(1, *op.output_shape(prior.image_shape)), sigma, post, ref)


def gaussian_problem(path: str = "vp", d: int = 16, m: int = 8, sigma: float = 0.1,
                     operator: str = "dense", seed: int = 0) -> ExactProblem:
    """Gaussian prior (variances 0.01..0.1, random rotation, mean in [0.3, 0.7]) and one noisy
    measurement of a prior draw."""
    g = torch.Generator().manual_seed(seed)
    shape = image_shape(d)
    cov = rotated_cov(g, d, -2.0, -1.0)
    mean = 0.3 + 0.4 * torch.rand(d, generator=g, dtype=torch.float64)
    op = make_operator(operator, shape, m, g)
    A = dense_matrix(op, shape)
    x = mean + torch.linalg.cholesky(cov) @ torch.randn(d, generator=g, dtype=torch.float64)
    y = A @ x + sigma * torch.randn(A.shape[0], generator=g, dtype=torch.float64)
    return exact_problem(GaussianPrior(mean, cov, shape, PATHS[path]()), op, y, sigma)


#: mixture layouts (K = 3): (null-space spread, range spread, weights of the component means
#: that make y). "range": the components differ only in the range of A, y re-weights them
#: (exact weights ~.15/.36/.49); "null": they differ mostly in its null space (~.13/.51/.36).
MIXTURES = {"range": (0.0, 0.8, (0.425, 0.075, 0.5)), "null": (0.8, 0.4, (0.3, 0.2, 0.5))}


def mixture_problem(path: str = "vp", layout: str = "range", d: int = 16, m: int = 8,
                    sigma: float = 0.1, operator: str = "dense", components: int = 3,
                    weights: Optional[Sequence[float]] = None, target_weights: Optional[Sequence[float]] = None,
                    seed: int = 1) -> ExactProblem:
    """``components`` Gaussians (variances 10^-2.5..10^-1.5, prior weights .5/.3/.2 for three,
    else ``weights`` or uniform), means ``0.5 +`` null-space and range parts of :data:`MIXTURES`
    ``layout``, and a noiseless ``y = A (sum_k c_k mu_k)`` (``c`` of the layout for three
    components, a seeded Dirichlet draw otherwise). ``target_weights``: ``c`` is fitted instead
    (:func:`_place_measurement`) so that the *posterior* weights are close to them, keeping the
    posterior multi-modal as ``d`` grows (the fit is approximate: check ``posterior.weights``)."""
    null_spread, range_spread, mix = MIXTURES[layout]
    K = int(components)
    g = torch.Generator().manual_seed(seed)
    shape = image_shape(d)
    covs = torch.stack([rotated_cov(g, d, -2.5, -1.5) for _ in range(K)])
    op = make_operator(operator, shape, m, g)
    A = dense_matrix(op, shape)
    r = int(torch.linalg.matrix_rank(A))
    Vh = torch.linalg.svd(A).Vh
    null = (torch.randn(K, d - r, generator=g, dtype=torch.float64) @ Vh[r:] * null_spread / math.sqrt(d - r)
            if r < d else 0.0)
    rng_part = torch.randn(K, r, generator=g, dtype=torch.float64) @ Vh[:r] * range_spread / math.sqrt(r)
    means = 0.5 + null + rng_part
    if weights is None:
        weights = (0.5, 0.3, 0.2) if K == 3 else [1.0 / K] * K
    if K != 3:
        e = -torch.log(torch.rand(K, generator=g, dtype=torch.float64))     # a flat Dirichlet draw
        mix = (e / e.sum()).tolist()
    prior = GaussianMixturePrior(torch.tensor(weights, dtype=torch.float64), means, covs, shape, PATHS[path]())
    c = torch.tensor(mix, dtype=torch.float64)
    if target_weights is not None:
        c = _place_measurement(prior, A, sigma, c, target_weights)
    y = A @ (c @ means)
    return exact_problem(prior, op, y, sigma)


def _place_measurement(prior, A: Tensor, sigma: float, c: Tensor, target_weights) -> Tensor:
    """Mixing coefficients ``c`` on the simplex whose ``y = A (c @ means)`` gives posterior
    weights near ``target_weights``: Adam on ``KL(target || w(y))`` with the closed form
    ``log w_k = log pi_k + log N(y; A mu_k, A C_k A^T + sigma^2 I) + const``."""
    K = len(prior.weights)
    target = torch.as_tensor(target_weights, dtype=torch.float64)
    if target.shape != (K,) or not bool((target > 0).all()):
        raise ValueError(f"target_weights must be {K} positive numbers, got {target_weights}")
    target = target / target.sum()
    eye = torch.eye(A.shape[0], dtype=torch.float64)
    comps = [torch.distributions.MultivariateNormal(A @ prior.means[k], A @ prior.covs[k] @ A.T + sigma ** 2 * eye)
             for k in range(K)]
    logits = torch.log(c).clone().requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=0.05)
    for _ in range(500):
        y = A @ (torch.softmax(logits, 0) @ prior.means)
        logw = torch.log_softmax(torch.stack([torch.log(prior.weights[k]) + comps[k].log_prob(y) for k in range(K)]), 0)
        loss = (target * (torch.log(target) - logw)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.softmax(logits.detach(), 0)


def posterior_as_prior(problem: ExactProblem) -> GaussianMixturePrior:
    """The exact posterior as a prior on the same path: an unconditional sampler run on it shows
    the error floor of the time grid (what any method with the exact posterior score gets)."""
    post = problem.posterior
    return GaussianMixturePrior(post.weights, post.means, post.covs, post.image_shape, problem.prior.path)


# --- draws ---------------------------------------------------------------------------------
def draws(method, problem: ExactProblem, n: int, seed: int = 1, check_finite: bool = True) -> Tensor:
    """``n`` outputs of ``method`` for ``problem``'s measurement (float64, ``BatchRNG(n, seed)``);
    ``check_finite=False`` returns non-finite draws instead of raising (benchmarks score them)."""
    rng = BatchRNG(n, seed)
    x = method.sample(problem.prior, problem.operator, problem.batch(n), rng, GaussianNoise(problem.sigma))
    if x.shape != (n, *problem.prior.image_shape) or (check_finite and not torch.isfinite(x).all()):
        raise ValueError(f"{method!r} returned shape {tuple(x.shape)} or non-finite samples")
    return x.to(torch.float64)


def draw_exact(problem: ExactProblem, n: int, seed: int = 100) -> Tensor:
    """``n`` exact posterior draws (the Monte Carlo floor of every metric at the same ``n``)."""
    return problem.posterior.sample(n, BatchRNG(n, seed)).double()


# --- metrics -------------------------------------------------------------------------------
def _whiten(x: Tensor, post: GaussianMixturePrior) -> Tensor:
    L = torch.linalg.cholesky(post.cov_matrix())
    return torch.linalg.solve_triangular(L, (x.flatten(1).double() - post.mean_vector()).T, upper=False).T


def gaussian_errors(x: Tensor, post: GaussianMixturePrior) -> dict:
    """Whitened ``mean`` and ``cov`` errors of draws ``x`` against the posterior's moments."""
    z = _whiten(x, post)
    eye = torch.eye(z.shape[1], dtype=torch.float64)
    return dict(mean=float(z.mean(0).norm()), cov=float((torch.cov(z.T) - eye).norm()))


def gaussian_tolerances(n: int, d: int, k: float = 5.0) -> dict:
    """``k`` standard deviations above the mean of each error for ``n`` exact draws in ``d``
    dimensions (``k = 0``: the expected values)."""
    q = d * (d + 1)
    return dict(mean=math.sqrt((d + k * math.sqrt(2 * d)) / n), cov=math.sqrt((q + 2 * k * math.sqrt(q)) / n))


def sliced_wasserstein(x: Tensor, problem: ExactProblem, projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-2 distance, in whitened units, between draws ``x`` and ``len(x)`` of the
    problem's reference exact draws: ``sqrt(mean_theta W2^2(theta^T z, theta^T z_ref))`` over
    ``projections`` seeded random directions (1-D W2 by sorting)."""
    z = _whiten(x, problem.posterior)
    n = z.shape[0]
    if n > problem.ref.shape[0]:
        raise ValueError(f"{n} draws but only {problem.ref.shape[0]} reference draws")
    return sliced_w2(z, _whiten(problem.ref[:n], problem.posterior), projections, seed)


def sliced_w2(x: Tensor, y: Tensor, projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-2 distance ``sqrt(mean_theta W2^2(theta^T x, theta^T y))`` between two
    equal-size sets of (flattened) draws, in their own units, over ``projections`` seeded random
    unit directions (1-D W2 by sorting)."""
    x, y = x.flatten(1).double(), y.flatten(1).double()
    if x.shape != y.shape:
        raise ValueError(f"sliced_w2 needs equal-size sets, got {tuple(x.shape)} and {tuple(y.shape)}")
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(x.shape[1], projections, generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=0)
    a, b = (x @ theta).sort(0).values, (y @ theta).sort(0).values
    return float(((a - b) ** 2).mean().sqrt())


def mode_fractions(x: Tensor, post: GaussianMixturePrior) -> Tensor:
    """Fraction of draws whose highest-responsibility posterior component is each ``k``."""
    labels = post.component_log_density(x.flatten(1).double()).argmax(1)    # structured covs: no dense C_k
    return torch.bincount(labels, minlength=len(post.weights)).double() / x.shape[0]


def mode_error(x: Tensor, problem: ExactProblem) -> float:
    """Total variation between the mode fractions of ``x`` and of the reference exact draws."""
    return float(0.5 * (mode_fractions(x, problem.posterior) - problem.ref_modes).abs().sum())


def point_errors(x: Tensor, problem: ExactProblem) -> dict:
    """``dist``, ``spread`` and ``res`` of (point) estimates ``x`` (see the module docstring)."""
    post = problem.posterior
    flat = x.flatten(1).double()
    tr = torch.trace(post.cov_matrix())
    r = (problem.operator(x.double()) - problem.y).flatten(1)
    return dict(dist=float((((flat - post.mean_vector()) ** 2).sum(1).mean() / tr).sqrt()),
                spread=float((torch.trace(torch.cov(flat.T)) / tr).sqrt()),
                res=float((r ** 2).mean(1).sqrt().mean()))


def all_errors(x: Tensor, problem: ExactProblem) -> dict:
    """Every metric of draws ``x`` (``modes`` only for mixtures)."""
    out = {**gaussian_errors(x, problem.posterior), "sw": sliced_wasserstein(x, problem), **point_errors(x, problem)}
    if len(problem.posterior.weights) > 1:
        out["modes"] = mode_error(x, problem)
    return out


__all__ = ["PATHS", "OPERATORS", "MIXTURES", "N_REF", "ExactProblem", "exact_problem", "image_shape", "rotated_cov", "make_operator",
           "gaussian_problem", "mixture_problem", "posterior_as_prior", "draws", "draw_exact", "gaussian_errors",
           "gaussian_tolerances", "sliced_wasserstein", "sliced_w2", "mode_fractions", "mode_error", "point_errors", "all_errors"]
