"""Noise paths ``x_t = a(t) * x0 + b(t) * eps``.

Every path is described by two scalar functions of time on ``[t_min, t_max]``.
Time always runs from data (small t) to noise (large t); samplers walk a
*descending* grid given by a schedule (:mod:`lit_ip.sampling.schedules`) and finish
at the clean end, which :meth:`NoisePath.coefficients` represents by ``t=None``
(``a = 1, b = 0``). :meth:`NoisePath.snap` rounds a time to one a network trained on the
path can take (a VP path's integer training steps).

* :class:`VPPath` -- DDPM variance preserving, ``a = sqrt(alpha_bar)``,
  ``b = sqrt(1 - alpha_bar)``, discrete training steps ``t in {0..T-1}``
  (Ho et al. 2020 linear betas; Nichol & Dhariwal 2021 cosine).
* :class:`VEPath` -- variance exploding, ``a = 1``, ``b = t`` (EDM convention,
  time equals noise level).
* :class:`RectifiedFlowPath` -- ``a = 1 - t``, ``b = t``, ``t in [0, 1]``, t = 1 is noise.

A path may be *rescaled* (:meth:`NoisePath.scaled`): a network trained on data in
[-1, 1] has, in [0, 1] image units, the path ``(a, b / 2)``. Priors expose their
path in [0, 1] units so that methods and operators never see a network's range.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .betas import DIFFUSERS_NAMES, make_betas


class NoisePath:
    """Base class: subclasses define :meth:`_ab`, ``t_min`` and ``t_max``."""

    t_min: float
    t_max: float
    #: name used in saved prior descriptions
    kind: str = "base"

    def __init__(self, scale: float = 1.0):
        if not scale > 0:
            raise ValueError(f"path scale must be positive, got {scale}")
        self.scale = float(scale)

    # --- coefficients -------------------------------------------------
    def _ab(self, t: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _ab_dot(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Time derivatives (da/dt, db/dt) of the *unscaled* path, by autograd."""
        with torch.enable_grad():  # also under no_grad (samplers, validation)
            t = t.detach().double().requires_grad_(True)
            a, b = self._ab(t)
            a, b = a + 0 * t, b + 0 * t  # constant coefficients still get a (zero) gradient
            da = torch.autograd.grad(a.sum(), t, retain_graph=True)[0]
            db = torch.autograd.grad(b.sum(), t)[0]
        return da.detach(), db.detach()

    def coefficients(self, t: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """(a(t), b(t)) in this path's units; ``t=None`` is the clean end (1, 0)."""
        if t is None:
            return torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
        t = torch.as_tensor(t, dtype=torch.float64)
        a, b = self._ab(t)
        return a, b * self.scale

    def derivatives(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(da/dt, db/dt) in this path's units."""
        da, db = self._ab_dot(torch.as_tensor(t, dtype=torch.float64))
        return da, db * self.scale

    def snap(self, t: Tensor) -> Tensor:
        """The times a network trained on this path can be evaluated at, nearest to ``t``
        (identity for continuous paths; a discrete path rounds to its training steps)."""
        return t

    def scaled(self, factor: float) -> "NoisePath":
        """The same path with ``b`` multiplied by ``factor`` (a change of data units)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.scale = self.scale * float(factor)
        return new

    def config(self) -> dict:
        """Serialisable description (``kind`` plus constructor arguments)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "kind")
        return f"{type(self).__name__}({args})"


class VPPath(NoisePath):
    """DDPM variance-preserving path with ``num_train_steps`` discrete steps.

    ``schedule``: ``linear``, ``scaled_linear``, ``cosine`` or ``sigmoid`` (or the diffusers
    name ``squaredcos_cap_v2``), see :mod:`lit_ip.priors.betas`.

    ``alpha_bar_t = prod_{s<=t} (1 - beta_s)``; time is the integer step index as a
    float in ``[0, T-1]``; between integers ``log alpha_bar`` is interpolated linearly.
    """

    kind = "vp"

    def __init__(self, num_train_steps: int = 1000, schedule: str = "linear",
                 beta_start: float = 1e-4, beta_end: float = 2e-2, scale: float = 1.0):
        super().__init__(scale)
        betas = make_betas(schedule, num_train_steps, beta_start, beta_end)  # the one place (betas.py)
        self.num_train_steps, self.schedule = int(num_train_steps), DIFFUSERS_NAMES.get(schedule, schedule)
        self.beta_start, self.beta_end = float(beta_start), float(beta_end)
        T = self.num_train_steps
        self.betas = betas
        self.log_alpha_bar = torch.cumsum(torch.log1p(-betas), 0)
        self.t_min, self.t_max = 0.0, float(T - 1)

    def _ab(self, t):
        t = t.clamp(self.t_min, self.t_max)
        lo = t.detach().floor().long().clamp(max=self.num_train_steps - 2)
        w = t - lo.to(t.dtype)
        lab = self.log_alpha_bar.to(t.device)
        la = (1 - w) * lab[lo] + w * lab[lo + 1]
        return torch.exp(0.5 * la), torch.sqrt(-torch.expm1(la))

    def snap(self, t):
        return torch.as_tensor(t, dtype=torch.float64).round().clamp(self.t_min, self.t_max)


    def config(self):
        return dict(kind=self.kind, num_train_steps=self.num_train_steps, schedule=self.schedule,
                    beta_start=self.beta_start, beta_end=self.beta_end)


class VEPath(NoisePath):
    """Variance-exploding path ``a = 1, b = t`` with ``t`` in ``[sigma_min, sigma_max]``.

    ``rho`` is kept in its config for EDM-style grids (:class:`~lit_ip.sampling.schedules.KarrasSigma`).
    """

    kind = "ve"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                 scale: float = 1.0):
        super().__init__(scale)
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.t_min, self.t_max, self.rho = float(sigma_min), float(sigma_max), float(rho)

    def _ab(self, t):
        return torch.ones_like(t), t


    def config(self):
        return dict(kind=self.kind, sigma_min=self.t_min, sigma_max=self.t_max, rho=self.rho)


class RectifiedFlowPath(NoisePath):
    """Rectified flow / flow matching (Liu et al. 2023, Lipman et al. 2023): ``a = 1 - t, b = t``."""

    kind = "rf"

    def __init__(self, t_min: float = 1e-3, t_max: float = 1.0, scale: float = 1.0):
        super().__init__(scale)
        if not 0 <= t_min < t_max <= 1:
            raise ValueError(f"need 0 <= t_min < t_max <= 1, got {t_min}, {t_max}")
        self.t_min, self.t_max = float(t_min), float(t_max)

    def _ab(self, t):
        return 1 - t, t


    def config(self):
        return dict(kind=self.kind, t_min=self.t_min, t_max=self.t_max)


PATHS = {cls.kind: cls for cls in (VPPath, VEPath, RectifiedFlowPath)}


def path_from_config(cfg: dict) -> NoisePath:
    """Inverse of :meth:`NoisePath.config`."""
    cfg = dict(cfg)
    kind = cfg.pop("kind", None)
    if kind not in PATHS:
        raise ValueError(f"unknown noise path kind {kind!r}; known: {sorted(PATHS)}")
    return PATHS[kind](**cfg)
