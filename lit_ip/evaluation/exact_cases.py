"""Every registered method on the exact-posterior problems: the settings and the runner that the
tests (``tests/test_exact_posterior.py``, ``tests/test_more_methods.py``) and the benchmarks
(``benchmarks/exact_posterior_table.py``, ``benchmarks/exact_posterior_more_methods.py``) share.

The rows are :data:`lit_ip.methods.registry.METHODS`: a newly registered method gets a row with
its quick-case settings and ``num_steps = 100`` (:data:`DEFAULT`); an entry of :data:`SETTINGS`
(by registry name) gives its settings for these problems, per path where they differ
(``{"vp": {...}, "rf": {...}}`` overriding the shared ones).

Choices carried from the measurements in the tables: DPS's zeta = 0.005 is the paper's per-pixel
step (zeta' = 1 in [-1, 1] units on 256x256x3 images) carried over to 16 pixels; the flow path
uses eta = 0 (Euler) where the method has an ``eta``; DAPS uses lr 2e-3 (the paper's 2.5e-5 barely
mixes at this scale).
"""
from __future__ import annotations

import functools
from typing import Optional

from ..methods.base import Method
from ..methods.registry import METHODS
from . import exact as E

#: settings of a registered method without an entry in :data:`SETTINGS`
DEFAULT = dict(num_steps=100)
#: registry name -> constructor arguments (shared, and per path under "vp" / "rf"); "n": draws
SETTINGS: dict[str, dict] = {
    "Unconditional": dict(vp=dict(num_steps=1000, eta=1.0), rf=dict(num_steps=200, eta=0.0)),
    "MomentMatching": dict(cg_iters=20, vp=dict(num_steps=1000, eta=1.0), rf=dict(num_steps=200, eta=0.0)),
    "DPS": dict(zeta=0.005, vp=dict(num_steps=1000, eta=1.0), rf=dict(num_steps=200, eta=0.0)),
    "PiGDM": dict(num_steps=100, vp=dict(eta=1.0), rf=dict(eta=0.0)),
    "DMPS": dict(vp=dict(num_steps=1000, eta=1.0), rf=dict(num_steps=50, eta=0.0)),
    "DDRM": dict(num_steps=20, eta=0.85, eta_b=1.0),
    "DDNM": dict(num_steps=100, eta=1.0),
    "DDNMPlus": dict(num_steps=100, eta=1.0),
    "DiffPIR": dict(num_steps=100, lam=1.0, zeta=0.3),
    "DPSw": dict(num_steps=100),
    "DPSw-exact": dict(num_steps=100, mode="exact"),
    "REDDiff": dict(num_steps=300, lr=0.02, n=400),
    "DAPS": dict(num_steps=50, ode_steps=1, langevin_steps=50, lr=2e-3, lr_min_ratio=0.02, n=1000),
    "TDS": dict(num_steps=100, num_particles=4, twist="pigdm", n=1000),
    "DMPlug": dict(num_steps=3, iterations=300, lr=2e-2, select="es-wmv", n=400),
}
N_SAMPLES = 2000               # draws per run unless a setting says "n"
POINT_ESTIMATES = ("REDDiff", "DMPlug")   # judged by point_errors, not by the moments


def settings(name: str, path: str) -> dict:
    """Constructor arguments of registered method ``name`` on ``path`` ("vp" | "rf")."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; registered: {sorted(METHODS)}")
    if path not in E.PATHS:
        raise ValueError(f"unknown path {path!r}; known: {sorted(E.PATHS)}")
    spec = SETTINGS.get(name)
    if spec is None:
        return {**METHODS[name].small, **DEFAULT}
    shared = {k: v for k, v in spec.items() if k not in ("vp", "rf", "n")}
    return {**METHODS[name].small, **shared, **spec.get(path, {})}


def method(name: str, path: str) -> Method:
    return METHODS[name].cls(**settings(name, path))


def num_draws(name: str) -> int:
    return int(SETTINGS.get(name, {}).get("n", N_SAMPLES))


@functools.lru_cache(maxsize=None)
def problem(kind: str = "gaussian", path: str = "vp", operator: str = "dense") -> E.ExactProblem:
    """The shared problems: ``gaussian``, ``mixture`` (= ``mixture-range``) and ``mixture-null``
    (:func:`lit_ip.evaluation.exact.mixture_problem` layouts), d = 16, m = 8, sigma = 0.1."""
    if kind == "gaussian":
        return E.gaussian_problem(path, operator=operator)
    layout = kind.split("-")[1] if "-" in kind else "range"
    return E.mixture_problem(path, layout, operator=operator)


@functools.lru_cache(maxsize=None)
def _draws(name, kind, path, n, seed, operator):
    return E.draws(method(name, path), problem(kind, path, operator), n, seed)


def run(name: str, kind: str = "gaussian", path: str = "vp", n: Optional[int] = None, seed: int = 1,
        operator: str = "dense"):
    """Draws of registered method ``name`` (its :func:`settings`) on :func:`problem` ``kind``
    (cached per session: tests bounding the same run share it)."""
    return _draws(name, kind, path, n or num_draws(name), seed, operator)


def errors(name: str, kind: str = "gaussian", path: str = "vp", n: Optional[int] = None, seed: int = 1,
           operator: str = "dense") -> dict:
    """:func:`lit_ip.evaluation.exact.all_errors` of :func:`run`."""
    return E.all_errors(run(name, kind, path, n, seed, operator), problem(kind, path, operator))


__all__ = ["DEFAULT", "SETTINGS", "N_SAMPLES", "POINT_ESTIMATES", "settings", "method", "num_draws", "problem",
           "run", "errors"]
