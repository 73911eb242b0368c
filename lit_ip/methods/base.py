"""Posterior-sampling methods: the common interface, the shared preamble and the guided loop.

A :class:`Method` turns (prior, operator, noise model, y, per-sample generators) into samples of
``x0`` with the prior's image shape. Every method starts with the same preamble,
:meth:`Method.setup`: input checks, the noise default, and a :class:`Problem` holding the data
fit (:mod:`lit_ip.methods.likelihood`) and cached spectral views. The time grid is a
:class:`~lit_ip.sampling.schedules.Schedule` (``schedule=``; each method defaults to its paper's).

Explicit-approximation methods (Daras et al. 2024, "A survey on diffusion models for inverse
problems", arXiv:2410.00083, Eq. 3.1: "error vector, lifting matrix, step size") subclass
:class:`GuidedMethod`, whose loop has one hook per way the literature modifies a step:

==================  =============================================================================
``estimate``        the measurement-aware Tweedie estimate ``x0_c`` (DMPS, DDNM, DiffPIR, ...)
``guidance``        an additive term to the next state (DPS, PiGDM)
``noise_std``       the step's fresh-noise std ``c`` (DDIM's eta, DiffPIR's zeta)
``step``            the move ``x_t -> x_next`` given ``x0_c`` (default: :func:`ddim_step`; DDRM,
                    DDNM+ step in spectral space)
``post_step``       after the step: projection (MCG), replacement (ILVR, Score-SDE)
``renoise``         a move to a *noisier* time, for schedules that jump back (RePaint, DDNM
                    time travel: :class:`~lit_ip.sampling.schedules.Resampling`)
``initial_state``   the state at the first time (default: a draw of ``p_T``; OT-ODE: noised ``A^+ y``)
==================  =============================================================================

Whole-loop methods (RED-diff, DAPS, DMPlug, SMC) override :meth:`Method.sample` and reuse the
same preamble, schedule, data fit and prior. Every prior evaluation is counted by the prior
(:attr:`~lit_ip.priors.base.Prior.evaluations`); :meth:`Method.expected_nfe` states what a
method should use, and the method-case registry tests that the two agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import Tensor

from ..operators.base import Operator
from ..operators.noise import GaussianNoise, NoiseModel
from ..priors.base import Prior
from ..sampling.schedules import Schedule, UniformTime
from ..sampling.steps import bridge_std, ddim_step
from .likelihood import DataFit, data_fit
from .source import check_source
from .spectral import Spectrum, gaussian_sigma

#: operator properties a method can require, with how to test them
PROPERTIES = {
    "linear": lambda op: op.linear,
    "svd": lambda op: op.has_svd,
    "differentiable": lambda op: op.differentiable,
    "h_dagger": lambda op: op.has_h_dagger or op.linear,
}


@dataclass
class Problem:
    """One inverse problem as a method sees it, built by :meth:`Method.setup`.

    ``fit`` is the data fit of the noise model; ``state`` is what the method's ``prepare`` put
    there (always a dict); :meth:`spectrum` and :attr:`sigma` are computed once on demand.
    """

    prior: Prior
    operator: Operator
    y: Tensor
    noise: NoiseModel
    fit: DataFit
    method: str = "method"
    state: dict = field(default_factory=dict)
    _spectra: dict = field(default_factory=dict, repr=False)

    @property
    def sigma(self) -> float:
        """The Gaussian measurement std (methods whose formulas assume Gaussian noise)."""
        return gaussian_sigma(self.noise, self.method)

    def spectrum(self, cutoff: float = 0.0) -> Spectrum:
        """The spectral view of the problem (SVD operators), cached per ``cutoff``."""
        if cutoff not in self._spectra:
            self._spectra[cutoff] = Spectrum(self.operator, self.y, cutoff)
        return self._spectra[cutoff]


class Method:
    """Base class of posterior samplers.

    Args:
        num_steps: number of time steps of the schedule (network evaluations for most methods).
        schedule: the time grid; None = :meth:`default_schedule` (the paper's).
    """

    #: operator properties this method needs (keys of :data:`PROPERTIES`)
    requires: tuple[str, ...] = ()
    #: whether the method's formulas assume Gaussian measurement noise (others are refused)
    gaussian_noise: bool = False

    def __init__(self, num_steps: int = 100, schedule: Optional[Schedule] = None):
        if int(num_steps) < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a lit_ip Schedule, got {type(schedule).__name__}")
        self.num_steps = int(num_steps)
        self.schedule = schedule if schedule is not None else self.default_schedule()

    def default_schedule(self) -> Schedule:
        """The paper's time grid (default: uniform in time)."""
        return UniformTime()

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

    # --- the shared preamble -----------------------------------------------------
    def likelihood_sigma(self) -> Optional[float]:
        """A Gaussian likelihood width that overrides the noise model's (a tuning parameter of some
        methods, e.g. DAPS's tau); None = the noise model's own data fit."""
        return None

    def accepts_source(self, prior: Prior) -> bool:
        """Whether this method's formulas hold on a prior with a restricted (non-``N(0, I)``) source
        (:mod:`lit_ip.methods.source`); default: no, the prior is refused."""
        return False

    def setup(self, prior: Prior, operator: Operator, y: Tensor, noise: Optional[NoiseModel]) -> Problem:
        """Checks and the :class:`Problem` every method starts from."""
        noise = GaussianNoise(0.0) if noise is None else noise
        check_source(self, prior)
        self.check_inputs(prior, operator, y, noise)
        fit = data_fit(noise, operator, y, self.likelihood_sigma())
        p = Problem(prior, operator, y, noise, fit, self.name)
        if self.gaussian_noise:
            p.sigma  # refuses other noise models before any work
        return p

    def pairs(self, prior: Prior, t_start=None) -> list[tuple]:
        """The ``(t, t_next)`` pairs of this method's schedule on the prior's path."""
        return self.schedule.pairs(prior.path, self.num_steps, t_start)

    @staticmethod
    def informative(prior: Prior, t) -> bool:
        """Whether ``x_t`` carries information about ``x0`` (``a(t) > 0``; a flow's ``t = 1`` does not):
        methods skip guidance, Jacobians and data terms where it does not."""
        return float(prior.path.coefficients(t)[0]) > 0

    # --- sampling -----------------------------------------------------------
    def sample(self, prior: Prior, operator: Operator, y: Tensor, rng,
               noise: Optional[NoiseModel] = None) -> Tensor:
        """Draw one posterior sample per row of ``y``."""
        raise NotImplementedError

    def expected_nfe(self, prior: Prior) -> Optional[dict]:
        """Prior evaluations per sample this method makes, ``{"nfe": forward, "nfe_backward": ...}``,
        or None when it depends on the data (e.g. early stopping)."""
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{self.name}({args})"


@dataclass
class StepState:
    """What the hooks of :class:`GuidedMethod` see at one step from ``t`` to ``t_next``."""

    x: Tensor          # current state x_t (requires grad when the method needs it)
    x0: Optional[Tensor]  # unconditional Tweedie estimate E[x0 | x_t] (differentiable w.r.t. x;
                          # None when the method sets uses_prior_estimate = False)
    t: Tensor          # current time
    t_next: Any        # next time (None = the clean end)
    a: Tensor          # path coefficients at t
    b: Tensor
    a_next: Tensor     # coefficients at t_next (1, 0 at the clean end)
    b_next: Tensor
    c: Tensor          # std of the fresh noise of the step (``noise_std``)
    index: int         # step number, 0 = first (noisiest)

    @property
    def final(self) -> bool:
        return self.t_next is None


class GuidedMethod(Method):
    """Shared loop of explicit-approximation methods. At every step from ``t`` to ``t_next``::

        x0_hat = prior.denoise(x_t, t)
        x0_c   = estimate(s, p)                     # measurement-aware Tweedie estimate
        x_next = step(x_t, x0_c) + guidance(s, p)   # default step: DDIM with noise std c
        x_next = post_step(x_next, s, p)

    and a pair whose ``t_next`` is noisier than ``t`` is a :meth:`renoise` move (no network call).
    A method whose :meth:`estimate` does not start from ``x0_hat`` (it calls another denoiser, e.g.
    the exact non-isotropic one) sets ``uses_prior_estimate = False``: ``s.x0`` is then None and the
    prior is not called for it.
    Replacing ``x0_hat`` by ``x0_c = x0_hat + (b^2 / a) s_y`` is exactly replacing the prior score by
    the posterior score ``score + s_y`` (Tweedie), which is how methods that estimate
    ``s_y = grad log p(y | x_t)`` enter the loop.

    Args:
        num_steps: steps of the schedule (one network evaluation each).
        eta: DDIM stochasticity (1 = DDPM ancestral, 0 = deterministic / flow Euler).
        schedule: the time grid (None = the paper's).
    """

    #: whether the loop computes ``x0_hat = prior.denoise(x_t, t)`` for the hooks (``s.x0``)
    uses_prior_estimate: bool = True
    #: whether the hooks differentiate through the prior (vector-Jacobian product)
    needs_grad: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "correct" in cls.__dict__:   # the hook of an earlier version: refuse rather than ignore it
            raise TypeError(f"{cls.__name__} defines correct(), which GuidedMethod no longer calls: return "
                            f"the corrected Tweedie estimate from estimate(s, p) and an additive term from "
                            f"guidance(s, p) instead (see lit_ip/methods/base.py)")

    def __init__(self, num_steps: int = 100, eta: float = 1.0, schedule: Optional[Schedule] = None):
        super().__init__(num_steps, schedule)
        if not 0 <= float(eta) <= 1:
            raise ValueError(f"eta must be in [0, 1], got {eta}")
        self.eta = float(eta)

    # --- hooks ------------------------------------------------------------------------
    def prepare(self, p: Problem) -> Optional[dict]:
        """Per-call precomputation, merged into ``p.state``."""
        return None

    def estimate(self, s: StepState, p: Problem) -> Tensor:
        """The measurement-aware Tweedie estimate ``x0_c`` (default: ``x0_hat``)."""
        return s.x0

    def guidance(self, s: StepState, p: Problem) -> Optional[Tensor]:
        """An additive term to the next state (default: none)."""
        return None

    def noise_std(self, a: Tensor, b: Tensor, a_next: Tensor, b_next: Tensor) -> Tensor:
        """Std ``c`` of the fresh noise of a step (default: DDIM's ``eta`` times the bridge std)."""
        return bridge_std(a, b, a_next, b_next, self.eta)

    def step(self, x: Tensor, x0_c: Tensor, s: StepState, p: Problem, rng) -> Tensor:
        """Move ``x`` to ``t_next`` given ``x0_c`` (default: :func:`ddim_step` with noise std ``s.c``)."""
        return ddim_step(x, x0_c, s.a, s.b, s.a_next, s.b_next, rng=rng, c=s.c)

    def post_step(self, x: Tensor, s: StepState, p: Problem, rng) -> Tensor:
        """Modify the new state (projection, replacement); default: none."""
        return x

    def initial_state(self, p: Problem, t0, rng) -> Tensor:
        """The state at the first time ``t0`` (default: the prior's draw of ``p_{t0}``); methods that start
        from a measurement-dependent state (OT-ODE's noised pseudo-inverse) override it."""
        return p.prior.init_noise(p.y.shape[0], rng, t0).to(p.y.device)

    def renoise(self, x: Tensor, a: Tensor, b: Tensor, a_next: Tensor, b_next: Tensor, p: Problem, rng) -> Tensor:
        """Forward move to a noisier time: ``x' = (a'/a) x + sqrt(b'^2 - (a' b / a)^2) z`` (the path's
        transition ``q(x_t' | x_t)``)."""
        k = a_next / a
        return k * x + torch.sqrt((b_next ** 2 - (k * b) ** 2).clamp_min(0)) * rng.randn(x.shape).to(x)

    # --- the loop ------------------------------------------------------------------------
    def sample(self, prior, operator, y, rng, noise=None):
        p = self.setup(prior, operator, y, noise)
        p.state.update(self.prepare(p) or {})
        pairs = self.pairs(prior)
        x = self.initial_state(p, pairs[0][0], rng)
        index = 0
        for t, t_next in pairs:
            a, b = prior.coefficients(t, x)
            a_n, b_n = prior.coefficients(t_next, x)
            if t_next is not None and float(t_next) > float(t):
                x = self.renoise(x, a, b, a_n, b_n, p, rng)
                continue
            with torch.enable_grad() if self.needs_grad else torch.no_grad():
                x_in = x.detach().requires_grad_(self.needs_grad)
                x0 = prior.denoise(x_in, t) if self.uses_prior_estimate else None
                s = StepState(x_in, x0, t, t_next, a, b, a_n, b_n,
                              self.noise_std(a, b, a_n, b_n), index)
                x0_c = self.estimate(s, p)
                shift = self.guidance(s, p)
            x = self.step(x.detach(), x0_c.detach(), s, p, rng)
            if shift is not None:
                x = x + shift.detach()
            x = self.post_step(x, s, p, rng)
            index += 1
        return x.detach()

    def expected_nfe(self, prior):
        n = sum(1 for t, t_next in self.pairs(prior) if t_next is None or float(t_next) < float(t))
        return {"nfe": n, "nfe_backward": n if self.needs_grad else 0}


class Unconditional(GuidedMethod):
    """Unconditional sampling (ignores y): DDPM ancestral (eta=1), DDIM (eta<1), flow Euler (eta=0).

    Ho et al. 2020 (arXiv:2006.11239); Song et al. 2021, DDIM (arXiv:2010.02502); Liu et al. 2023,
    rectified flow (arXiv:2209.03003).
    """

    def accepts_source(self, prior):
        """With ``eta = 0`` the step uses only ``E[x1 | x_t] = (x_t - a x0_hat) / b``, valid for any source;
        ``eta > 0`` adds isotropic fresh noise, wrong for a restricted one."""
        return self.eta == 0
