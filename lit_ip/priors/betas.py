"""DDPM beta schedules: the one place that turns a schedule name into betas.

``VPPath(schedule=...)`` and the diffusers scheduler-config reader both come here. Names
(diffusers' ``beta_schedule`` in brackets), ``T`` training steps, ``i = 0 .. T-1``:

* ``linear`` (``linear``): ``beta_i = beta_start + i (beta_end - beta_start) / (T - 1)`` (Ho et al. 2020,
  "Denoising Diffusion Probabilistic Models", arXiv:2006.11239);
* ``scaled_linear`` (``scaled_linear``): linear in ``sqrt(beta)`` (latent diffusion);
* ``cosine`` (``squaredcos_cap_v2``): ``alpha_bar(u) = cos^2((u / T + s) / (1 + s) pi / 2)``, ``s = 0.008``,
  ``beta_i = min(1 - alpha_bar(i + 1) / alpha_bar(i), 0.999)`` (Nichol & Dhariwal 2021, "Improved
  Denoising Diffusion Probabilistic Models", arXiv:2102.09672, Eq. 17; ``beta_start`` / ``beta_end`` unused);
* ``sigmoid`` (``sigmoid``): ``beta_i = beta_start + (beta_end - beta_start) sigmoid(-6 + 12 i / (T - 1))``
  (GeoDiff, Xu et al. 2022, arXiv:2203.02923).

Computed in float64 (diffusers computes in float32; the alphas agree to float32 precision).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["SCHEDULES", "DIFFUSERS_NAMES", "make_betas"]


def _linear(T: int, start: float, end: float) -> Tensor:
    return torch.linspace(start, end, T, dtype=torch.float64)


def _scaled_linear(T: int, start: float, end: float) -> Tensor:
    return torch.linspace(math.sqrt(start), math.sqrt(end), T, dtype=torch.float64) ** 2


def _cosine(T: int, start: float, end: float) -> Tensor:
    s = 0.008
    u = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=0.999)


def _sigmoid(T: int, start: float, end: float) -> Tensor:
    return torch.sigmoid(torch.linspace(-6, 6, T, dtype=torch.float64)) * (end - start) + start


#: lit_ip schedule name -> betas(T, beta_start, beta_end)
SCHEDULES = {"linear": _linear, "scaled_linear": _scaled_linear, "cosine": _cosine, "sigmoid": _sigmoid}
#: diffusers ``beta_schedule`` -> lit_ip schedule name
DIFFUSERS_NAMES = {"linear": "linear", "scaled_linear": "scaled_linear", "squaredcos_cap_v2": "cosine",
                   "sigmoid": "sigmoid"}


def make_betas(schedule: str, num_train_steps: int, beta_start: float = 1e-4, beta_end: float = 2e-2) -> Tensor:
    """``(T,)`` float64 betas of ``schedule`` (a lit_ip name or its diffusers name)."""
    name = DIFFUSERS_NAMES.get(schedule, schedule)
    if name not in SCHEDULES:
        raise ValueError(f"unknown beta schedule {schedule!r}; use one of {sorted(SCHEDULES)} "
                         f"(diffusers names: {sorted(DIFFUSERS_NAMES)})")
    if int(num_train_steps) < 2:
        raise ValueError(f"a beta schedule needs at least 2 steps, got {num_train_steps}")
    return SCHEDULES[name](int(num_train_steps), float(beta_start), float(beta_end))
