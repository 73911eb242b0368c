"""Schedules: which noise levels a sampler visits.

A schedule turns a path and a step count into a descending list of path times; the sampler
then steps from each time to the next and, after the last, to the clean end (``None``).
Schedules are path-agnostic: they are written either in path time ``t`` or in the VE noise
level ``sigma = b / a`` of the path (in the prior's [0, 1] image units), and
:meth:`~lit_ip.priors.paths.NoisePath.snap` -- the one place where a discrete (VP) path rounds
to its training steps -- makes the times evaluable; repeated times after rounding are dropped,
so a VP grid may be shorter than asked near the clean end (the counted network evaluations say
how many were made).

===========================  =====================================================================
:class:`UniformTime`         ``t`` evenly spaced from the top to ``t_min`` (``endpoint=False``: the
                             "leading" spacing ``0, T/N, ..., (N-1) T/N`` of the DDIM / DDRM code)
:class:`PowerTime`           ``t = t_min + f (t_top - t_min) u^p``, ``u`` uniform: ``p = 2, f = 0.8`` is
                             the DDIM code's "quad" grid; ``reverse=True`` uses ``1 - (1 - u)^p``:
                             ``p = 1/2`` is DiffPIR's "quad" skip ``T - sqrt(linspace(0, T^2, N))``
                             (both dense at the clean end)
:class:`KarrasSigma`         EDM (Karras et al. 2022, Eq. 5): ``sigma_i = (s_max^(1/rho) + i/(N-1)
                             (s_min^(1/rho) - s_max^(1/rho)))^rho``, ``rho = 7``
:class:`LogSNRUniform`       ``log(a / b)`` evenly spaced (uniform in log-SNR)
:class:`Resampling`          a base schedule with RePaint's jumps back (Lugmayr et al. 2022): after
                             ``jump`` steps down, ``jump`` steps up by re-noising, ``repeats`` times
===========================  =====================================================================

:meth:`Schedule.pairs` is what loops iterate over: ``(t, t_next)`` with ``t_next = None`` at the
clean end; a pair with ``t_next`` *noisier* than ``t`` is a re-noising move (:class:`Resampling`).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

#: cap on the VE level of a path whose top has ``a = 0`` (a flow at ``t = 1``)
LEVEL_CAP = 1e3


def level(path, t) -> float:
    """The VE noise level ``b(t) / a(t)`` of ``path`` (``inf`` where ``a = 0``)."""
    a, b = path.coefficients(torch.as_tensor(t, dtype=torch.float64))
    return float(b / a) if float(a) > 0 else math.inf


def time_at_level(path, sigma: float, iters: int = 80) -> Tensor:
    """The time ``t`` with ``b(t) / a(t) = sigma`` (bisection: ``b / a`` increases with ``t`` on every
    path); levels outside the path's range are clamped to ``t_min`` / ``t_max``. Not snapped."""
    lo, hi = float(path.t_min), float(path.t_max)
    if sigma <= level(path, lo):
        return torch.tensor(lo, dtype=torch.float64)
    if sigma >= level(path, hi):
        return torch.tensor(hi, dtype=torch.float64)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if level(path, mid) < sigma else (lo, mid)
    return torch.tensor(0.5 * (lo + hi), dtype=torch.float64)


def _check_steps(num_steps: int) -> int:
    if int(num_steps) < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    return int(num_steps)


class Schedule:
    """Base class: subclasses implement :meth:`grid` (descending raw times)."""

    def grid(self, path, num_steps: int, t_start: float) -> Tensor:
        raise NotImplementedError

    def times(self, path, num_steps: int, t_start: Optional[float] = None) -> list[Tensor]:
        """Descending evaluable times from ``t_start`` (default the path's ``t_max``)."""
        n = _check_steps(num_steps)
        top = float(path.t_max if t_start is None else t_start)
        raw = self.grid(path, n, top).to(torch.float64)
        snapped = torch.unique_consecutive(torch.stack([torch.as_tensor(path.snap(t), dtype=torch.float64)
                                                        for t in raw]))
        return list(snapped)

    def pairs(self, path, num_steps: int, t_start: Optional[float] = None) -> list[tuple]:
        """``[(t_0, t_1), ..., (t_{N-1}, None)]``; ``None`` is the clean end."""
        ts = self.times(path, num_steps, t_start)
        return list(zip(ts, ts[1:] + [None]))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class UniformTime(Schedule):
    """``t`` evenly spaced from the top to ``t_min``; ``endpoint=False`` leaves out ``t_min``'s end
    and starts one step below the top (``t_i = t_min + i (t_top - t_min) / N``, i < N: the
    "uniform skip" of the DDIM and DDRM code, which visits 0, 50, ..., 950 of 1000 steps; on the
    VP range [0, 999] this gives 0, 50, ..., 949)."""

    def __init__(self, endpoint: bool = True):
        self.endpoint = bool(endpoint)

    def grid(self, path, num_steps, t_start):
        lo = float(path.t_min)
        if self.endpoint:
            return torch.linspace(t_start, lo, num_steps, dtype=torch.float64)
        i = torch.arange(num_steps - 1, -1, -1, dtype=torch.float64)
        return lo + i * (t_start - lo) / num_steps


class PowerTime(Schedule):
    """``t_i = t_min + fraction (t_top - t_min) g(u_i)``, ``u`` from 1 to 0 in ``N`` even steps, with
    ``g(u) = u^power`` or, ``reverse=True``, ``g(u) = 1 - (1 - u)^power``.

    ``power=2, fraction=0.8``: the DDIM code's "quad" grid ``(linspace(0, sqrt(0.8 T), N))^2``;
    ``power=0.5, reverse=True``: DiffPIR's "quad" skip (its code indexes the reversed noise levels
    by ``sqrt(linspace(0, T^2, N))``, i.e. ``t = T - sqrt(linspace(0, T^2, N))``)."""

    def __init__(self, power: float = 2.0, fraction: float = 1.0, reverse: bool = False):
        if not float(power) > 0 or not 0 < float(fraction) <= 1:
            raise ValueError(f"PowerTime needs power > 0 and fraction in (0, 1], got {power}, {fraction}")
        self.power, self.fraction, self.reverse = float(power), float(fraction), bool(reverse)

    def grid(self, path, num_steps, t_start):
        lo = float(path.t_min)
        u = torch.linspace(1, 0, num_steps, dtype=torch.float64)
        g = 1 - (1 - u) ** self.power if self.reverse else u ** self.power
        return lo + self.fraction * (t_start - lo) * g


class _LevelSchedule(Schedule):
    """A grid of VE levels between ``sigma_max`` and ``sigma_min`` ([0, 1] image units; None = the
    path's own range), mapped to path times. With ``sigma_max=None`` the first time is the top
    itself, also where its level is infinite (a flow at ``t = 1``)."""

    def __init__(self, sigma_max: Optional[float] = None, sigma_min: Optional[float] = None):
        if sigma_min is not None and not float(sigma_min) > 0:
            raise ValueError(f"sigma_min must be > 0, got {sigma_min}")
        if sigma_max is not None and sigma_min is not None and not float(sigma_max) > float(sigma_min):
            raise ValueError(f"need sigma_max > sigma_min, got {sigma_max}, {sigma_min}")
        self.sigma_max = None if sigma_max is None else float(sigma_max)
        self.sigma_min = None if sigma_min is None else float(sigma_min)

    def levels(self, hi: float, lo: float, n: int) -> Tensor:
        raise NotImplementedError

    def grid(self, path, num_steps, t_start):
        hi = self.sigma_max if self.sigma_max is not None else min(level(path, t_start), LEVEL_CAP)
        lo = self.sigma_min if self.sigma_min is not None else max(level(path, path.t_min), 1e-6)
        if num_steps == 1:
            return torch.tensor([t_start], dtype=torch.float64)
        times = torch.stack([time_at_level(path, float(s)) for s in self.levels(hi, lo, num_steps)])
        if self.sigma_max is None:
            times[0] = t_start
        return times.clamp(max=t_start)


class KarrasSigma(_LevelSchedule):
    """EDM's level spacing (Karras et al. 2022, "Elucidating the design space of diffusion-based
    generative models", arXiv:2206.00364, Eq. 5) with exponent ``rho`` (paper: 7). EDM's
    ``sigma_max = 80, sigma_min = 0.002`` are in [-1, 1] units, i.e. 40 and 0.001 here."""

    def __init__(self, rho: float = 7.0, sigma_max: Optional[float] = None, sigma_min: Optional[float] = None):
        super().__init__(sigma_max, sigma_min)
        if not float(rho) > 0:
            raise ValueError(f"rho must be > 0, got {rho}")
        self.rho = float(rho)

    def levels(self, hi, lo, n):
        i = torch.linspace(0, 1, n, dtype=torch.float64)
        r = 1 / self.rho
        return (hi ** r + i * (lo ** r - hi ** r)) ** self.rho


class LogSNRUniform(_LevelSchedule):
    """Levels evenly spaced in ``log sigma = -log-SNR / 2`` between ``sigma_max`` and ``sigma_min``."""

    def levels(self, hi, lo, n):
        return torch.logspace(math.log10(hi), math.log10(lo), n, dtype=torch.float64)


class Resampling(Schedule):
    """RePaint's resampling schedule (Lugmayr et al. 2022, "RePaint: inpainting using denoising
    diffusion probabilistic models", arXiv:2201.09865, Sec. 4.2): walk the ``base`` grid down; at
    every ``jump``-th index (above the last ``jump``), go back up ``jump`` steps by re-noising and
    down again, ``repeats - 1`` times (paper: ``jump = 10``, ``repeats = 10`` on 250 steps). Also
    DDNM's time travel (Wang et al. 2023, Sec. 3.3) with ``jump`` = its travel length."""

    def __init__(self, base: Optional[Schedule] = None, jump: int = 10, repeats: int = 10):
        if int(jump) < 1 or int(repeats) < 1:
            raise ValueError(f"Resampling needs jump >= 1 and repeats >= 1, got {jump}, {repeats}")
        self.base = base if base is not None else UniformTime()
        self.jump, self.repeats = int(jump), int(repeats)

    def times(self, path, num_steps, t_start=None):
        return self.base.times(path, num_steps, t_start)

    def pairs(self, path, num_steps, t_start=None):
        ts = self.times(path, num_steps, t_start) + [None]
        n = len(ts) - 1                                   # index n is the clean end
        left = {j: self.repeats - 1 for j in range(self.jump, n, self.jump)}
        visit, i = [0], 0
        while i < n:
            i += 1
            visit.append(i)
            if left.get(i, 0) > 0 and i < n:
                left[i] -= 1
                for _ in range(self.jump):
                    i -= 1
                    visit.append(i)
        return [(ts[a], ts[b]) for a, b in zip(visit, visit[1:])]


__all__ = ["Schedule", "UniformTime", "PowerTime", "KarrasSigma", "LogSNRUniform", "Resampling",
           "level", "time_at_level", "LEVEL_CAP"]
