"""Posterior-sampling methods: the common interface and the shared loop.

A :class:`Method` turns (prior, operator, noise model, y, per-sample generators)
into samples of ``x0`` with the prior's image shape. Explicit-approximation
methods (Daras et al. 2024, survey Eq. 3.1: "error vector, lifting matrix, step
size") subclass :class:`GuidedMethod` and implement only :meth:`GuidedMethod.correct`,
which turns the unconditional Tweedie estimate into a measurement-consistent one.
Whole-loop methods override :meth:`Method.sample` and reuse the same objects.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor

from ..operators.base import Operator
from ..operators.noise import GaussianNoise, NoiseModel
from ..priors.base import Prior
from ..sampling.steps import ddim_step, time_pairs

#: operator properties a method can require, with how to test them
PROPERTIES = {
    "linear": lambda op: op.linear,
    "svd": lambda op: op.has_svd,
    "differentiable": lambda op: op.differentiable,
    "h_dagger": lambda op: op.has_h_dagger or op.linear,
}


class Method:
    """Base class of posterior samplers.

    Args:
        num_steps: number of network evaluations on the time grid.
    """

    #: operator properties this method needs (keys of :data:`PROPERTIES`)
    requires: tuple[str, ...] = ()

    def __init__(self, num_steps: int = 100):
        if int(num_steps) < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        self.num_steps = int(num_steps)

    @property
    def name(self) -> str:
        return type(self).__name__

    # --- validation ----------------------------------------------------------
    def check_operator(self, operator: Operator) -> None:
        """Refuse an operator that lacks a property this method needs."""
        missing = [p for p in self.requires if not PROPERTIES[p](operator)]
        if missing:
            raise ValueError(f"{self.name} needs an operator that is {' and '.join(missing)}, "
                             f"but {operator.describe()} is not")

    def check_inputs(self, prior: Prior, operator: Operator, y: Tensor, noise: NoiseModel) -> None:
        self.check_operator(operator)
        if operator.in_shape is not None and operator.in_shape != prior.image_shape:
            raise ValueError(f"operator {type(operator).__name__} takes images of shape {operator.in_shape} "
                             f"but the prior makes images of shape {prior.image_shape}")
        expected = operator.output_shape(prior.image_shape)
        if tuple(y.shape[1:]) != expected:
            raise ValueError(f"measurement y has shape {tuple(y.shape[1:])} per sample, but "
                             f"{type(operator).__name__} on images {prior.image_shape} gives {expected}")
        if not torch.isfinite(y).all():
            bad = (~torch.isfinite(y)).flatten(1).any(1).nonzero().flatten().tolist()
            raise ValueError(f"measurement y contains NaN or infinite values (batch rows {bad})")

    # --- sampling -----------------------------------------------------------
    def sample(self, prior: Prior, operator: Operator, y: Tensor, rng,
               noise: Optional[NoiseModel] = None) -> Tensor:
        """Draw one posterior sample per row of ``y``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{self.name}({args})"


@dataclass
class Problem:
    """One inverse problem: prior, operator, measurements and noise, plus what
    :meth:`GuidedMethod.prepare` precomputed (``extra``)."""

    prior: Prior
    operator: Operator
    y: Tensor
    noise: NoiseModel
    extra: Any = None


@dataclass
class StepState:
    """What :meth:`GuidedMethod.correct` sees at one step."""

    x: Tensor          # current state x_t (requires grad when the method needs it)
    x0: Tensor         # unconditional Tweedie estimate E[x0 | x_t] (differentiable w.r.t. x)
    t: Tensor          # current time
    a: Tensor          # path coefficients at t
    b: Tensor
    a_next: Tensor     # coefficients at the next time (1, 0 at the clean end)
    b_next: Tensor
    index: int         # step number, 0 = first (noisiest)


class GuidedMethod(Method):
    """Shared loop of explicit-approximation methods.

    At every step: ``x0_hat = prior.denoise(x_t, t)``; ``correct`` returns a
    measurement-aware estimate ``x0_c`` and an optional additive shift; then

        x_next = ddim_step(x_t, x0_c, eta) + shift.

    Replacing ``x0_hat`` by ``x0_c = x0_hat + (b^2 / a) * s_y`` is exactly replacing
    the prior score by the posterior score ``score + s_y`` (Tweedie), which is how
    methods that estimate ``s_y = grad log p(y | x_t)`` enter the loop.

    Args:
        num_steps: network evaluations.
        eta: DDIM stochasticity (1 = DDPM ancestral, 0 = deterministic / flow Euler).
    """

    #: whether ``correct`` differentiates through the prior (vector-Jacobian product)
    needs_grad: bool = False

    def __init__(self, num_steps: int = 100, eta: float = 1.0):
        super().__init__(num_steps)
        if not 0 <= float(eta) <= 1:
            raise ValueError(f"eta must be in [0, 1], got {eta}")
        self.eta = float(eta)

    def prepare(self, p: Problem) -> Any:
        """Per-call precomputation (e.g. spectral coefficients of y), kept in ``p.extra``."""
        return None

    def correct(self, s: StepState, p: Problem) -> tuple[Tensor, Optional[Tensor]]:
        """Return ``(x0_c, shift)``; ``shift`` is added to the next state (or None)."""
        raise NotImplementedError

    def sample(self, prior, operator, y, rng, noise=None):
        noise = GaussianNoise(0.0) if noise is None else noise
        self.check_inputs(prior, operator, y, noise)
        p = Problem(prior, operator, y, noise)
        p.extra = self.prepare(p)
        x = prior.init_noise(y.shape[0], rng).to(y.device)
        for i, (t, t_next) in enumerate(time_pairs(prior.path, self.num_steps)):
            a, b = prior.coefficients(t, x)
            a_n, b_n = prior.coefficients(t_next, x)
            with torch.enable_grad() if self.needs_grad else torch.no_grad():
                x_in = x.detach().requires_grad_(self.needs_grad)
                x0 = prior.denoise(x_in, t)
                s = StepState(x_in, x0, t, a, b, a_n, b_n, i)
                x0_c, shift = self.correct(s, p)
            x = self.step(x.detach(), x0_c.detach(), s, p, rng)
            if shift is not None:
                x = x + shift.detach()
        return x.detach()

    def step(self, x: Tensor, x0_c: Tensor, s: StepState, p: Problem, rng) -> Tensor:
        """Move ``x`` to the next time given ``x0_c`` (default: :func:`ddim_step` with ``eta``).
        Methods with their own noise schedule in spectral space (DDRM, DDNM+) override this."""
        return ddim_step(x, x0_c, s.a, s.b, s.a_next, s.b_next, self.eta, rng)


class Unconditional(GuidedMethod):
    """Unconditional sampling (ignores y): DDPM ancestral (eta=1), DDIM (eta<1), flow Euler (eta=0).

    Ho et al. 2020; Song et al. 2021 (DDIM); Liu et al. 2023 (rectified flow).
    """

    def correct(self, s, p):
        return s.x0, None
