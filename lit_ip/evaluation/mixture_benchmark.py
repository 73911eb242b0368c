"""The Gaussian-mixture benchmark of Cardoso, Janati el Idrissi, Le Corff & Moulines 2023, "Monte
Carlo guided diffusion for Bayesian linear inverse problems" (arXiv:2308.07983), Sec. 4, with its
scores (sliced Wasserstein distance and the error of the posterior mode weights).

Problem (:func:`cardoso_problem`), in ``d_x`` dimensions with ``d_y`` measurements:

* prior: 25 components ``N(m_ij, I)`` with means ``(8i, 8j, 8i, 8j, ...)`` for ``i, j in {-2..2}``
  and weights drawn uniformly (then normalised);
* operator: ``A = U diag(s) V^T`` (``d_y x d_x``) with ``U, V`` random orthogonal and singular
  values ``s`` uniform in ``[0, 1]``;
* noise: ``sigma_y = noise_scale * max(s)`` (``noise_scale = 0.01`` here, our reading of the paper's
  "scaled to the largest singular value"); ``y = A x* + sigma_y n`` with ``x*`` a prior draw.

The posterior is a 25-component mixture in closed form (isotropic prior: low-rank posterior
covariances, see :mod:`lit_ip.priors.analytic`), so exact draws are cheap at ``d_x = 800``.
``null_space=True`` moves the means into the operator's null space (``A m_k = 0`` for all ``k``):
the measurement then says nothing about the mode and the posterior keeps the prior's weights --
a sampler must not collapse onto a few modes.

Problems, draws and metrics are those of the one exact-posterior harness
(:mod:`lit_ip.evaluation.exact`): an :class:`~lit_ip.evaluation.exact.ExactProblem` whose ``ref``
holds the reference exact draws, :func:`~lit_ip.evaluation.exact.draws`,
:func:`~lit_ip.evaluation.exact.sliced_w2` (here in the problem's own units, as in the paper, not
whitened) and :func:`~lit_ip.evaluation.exact.mode_fractions`.

Units: this is a benchmark on its own scale (pixel values up to about 16), not of images in [0, 1];
``sigma_y`` is in the same units. Seeds are ours; the paper's instances are not reproduced.
"""
from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from ..operators.dense import DenseMatrixOperator
from ..priors.analytic import GaussianMixturePrior
from ..priors.paths import VPPath
from .exact import ExactProblem, draw_exact, draws, exact_problem, mode_fractions, sliced_w2

F64 = torch.float64
N_REF = 1000                   # default reference exact draws (the benchmark uses --samples of them)
PROJECTIONS = 1000             # sliced Wasserstein directions


def _orthogonal(n: int, g: torch.Generator) -> Tensor:
    Q, R = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    return Q * torch.sign(torch.diagonal(R))


def cardoso_problem(dx: int, dy: int, seed: int = 0, noise_scale: float = 0.01, null_space: bool = False,
                    path=None, n_ref: int = N_REF) -> ExactProblem:
    """One instance of the benchmark (see the module docstring); image shape ``(1, 1, dx)``, with
    ``n_ref`` reference exact posterior draws."""
    if dx % 2 or dy >= dx:
        raise ValueError(f"the benchmark needs an even dx > dy, got dx={dx}, dy={dy}")
    g = torch.Generator().manual_seed(1000 * seed + 7 * dx + dy)
    grid = torch.tensor([[8.0 * i, 8.0 * j] for i in range(-2, 3) for j in range(-2, 3)], dtype=F64)
    means = grid.repeat(1, dx // 2)
    weights = torch.rand(25, generator=g, dtype=F64)
    U, V = _orthogonal(dy, g), _orthogonal(dx, g)
    s = torch.sort(torch.rand(dy, generator=g, dtype=F64), descending=True).values
    A = U @ torch.diag(s) @ V[:, :dy].T
    if null_space:                               # project the means onto null(A): A m_k = 0
        N = V[:, dy:]
        means = means @ N @ N.T
    shape = (1, 1, dx)
    prior = GaussianMixturePrior(weights, means, torch.ones(25, dtype=F64), shape, path or VPPath())
    sigma = float(noise_scale * s.max())
    k = int(torch.multinomial(prior.weights, 1, generator=g))
    x = means[k] + torch.randn(dx, generator=g, dtype=F64)
    y = A @ x + sigma * torch.randn(dy, generator=g, dtype=F64)
    return exact_problem(prior, DenseMatrixOperator(A, shape), y, sigma, n_ref)


def mode_weight_error(samples: Tensor, posterior: GaussianMixturePrior) -> float:
    """Total variation ``0.5 sum_k |f_k - w_k|`` between the :func:`~lit_ip.evaluation.exact.mode_fractions`
    ``f_k`` of the draws and the posterior weights ``w_k`` (the paper's score)."""
    return float(0.5 * (mode_fractions(samples, posterior) - posterior.weights).abs().sum())


def score(samples: Tensor, problem: ExactProblem) -> dict:
    """``{"sw": ..., "mode_tv": ...}`` of ``samples`` against as many of the problem's reference draws."""
    n = samples.shape[0]
    if n > problem.ref.shape[0]:
        raise ValueError(f"{n} draws but only {problem.ref.shape[0]} reference draws (raise n_ref)")
    return dict(sw=sliced_w2(samples, problem.ref[:n], PROJECTIONS),
                mode_tv=mode_weight_error(samples, problem.posterior))


def floor(problem: ExactProblem, n: int, seed: int = 100) -> dict:
    """The Monte Carlo floor: the scores of ``n`` exact draws (``seed``) against the reference draws."""
    return score(draw_exact(problem, n, seed), problem)


def run_method(method, problem: ExactProblem, n: int, seed: int = 2) -> dict:
    """Scores, seconds and counted network evaluations per sample of ``n`` draws of ``method``
    (non-finite draws score ``sw = inf``, ``mode_tv = 1``)."""
    prior = problem.prior
    prior.evaluations.reset()
    t0 = time.perf_counter()
    x = draws(method, problem, n, seed, check_finite=False)
    sec = time.perf_counter() - t0
    finite = bool(torch.isfinite(x).all())
    out = score(x, problem) if finite else dict(sw=math.inf, mode_tv=1.0)
    out.update(seconds=sec, finite=finite, **prior.evaluations.per_sample(n))
    return out


__all__ = ["cardoso_problem", "mode_weight_error", "score", "floor", "run_method"]
