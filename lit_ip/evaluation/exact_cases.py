"""Every registered method on the exact-posterior problems: the settings and the runner that the
tests (``tests/test_exact_posterior.py``, ``tests/test_more_methods.py``,
``tests/test_methods_breadth.py``) and the benchmarks (``benchmarks/exact_posterior_table.py``,
``benchmarks/exact_posterior_more_methods.py``, ``benchmarks/exact_posterior_breadth.py``) share.

The rows are :data:`lit_ip.methods.registry.METHODS`: a newly registered method gets a row with
its quick-case settings and ``num_steps = 100`` (:data:`DEFAULT`); an entry of :data:`SETTINGS`
(by registry name) gives its settings for these problems, per path where they differ
(``{"vp": {...}, "rf": {...}}`` overriding the shared ones); ``"n"`` sets its number of draws and
``"operator"`` the operator kind its rows use instead of ``"dense"`` (DPS-w's reference task
needs a mask or ``A A^T = c I``).

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
    "DiffPIR": dict(num_steps=100, lam=4.0, zeta=0.3),     # paper units: rho = lam sigma^2 a^2 / (4 b^2)
    "DPSw": dict(num_steps=100, operator="inpainting"),
    "DPSw-exact": dict(num_steps=100, mode="exact"),
    "REDDiff": dict(num_steps=300, lr=0.02, lam=0.0625, n=400),   # paper weighting: 4 lam (b / a)
    "DAPS": dict(num_steps=50, ode_steps=1, langevin_steps=50, lr=2e-3, lr_min_ratio=0.02, tau=None,
                 n=1000),                                   # tau=None: the exact likelihood
    "TDS": dict(num_steps=100, num_particles=4, twist="pigdm", n=1000),
    "DMPlug": dict(num_steps=3, iterations=300, lr=2e-2, select="es-wmv", n=400),
    # the survey-breadth methods (docs/method_breadth.md): their constructor defaults at 100 steps
    # unless noted (spelled out: the registry's quick-case settings would override them); eta
    # stays 1 on the flow path too (DSG needs eta > 0; the replacement methods are stochastic)
    "ScoreSDE": dict(num_steps=100),
    "ScoreALD": dict(num_steps=50, langevin_steps=20, delta=0.2),
    "SNIPS": dict(num_steps=50, langevin_steps=20, delta=0.2),
    "ILVR": dict(num_steps=100),
    "RePaint": dict(num_steps=50, jump=5, repeats=3),
    "DDNMTimeTravel": dict(num_steps=100, jump=5, repeats=2),
    "MCG": dict(num_steps=100, zeta=0.5),
    "DDS": dict(num_steps=100, cg_iters=5),
    "MPGD": dict(num_steps=100, lr=1.0),
    "DSG": dict(num_steps=100, w=0.1),
    "KadkhodaieSimoncelli": dict(num_steps=1000, h0=0.01, beta=0.1, sigma_min=0.01),
    "OTODE": dict(num_steps=100),
}
#: the survey-breadth rows (benchmarks/exact_posterior_breadth.py, tests/test_methods_breadth.py)
BREADTH = ("ScoreSDE", "ScoreALD", "SNIPS", "ILVR", "RePaint", "DDNMTimeTravel", "MCG", "DDS", "MPGD", "DSG",
           "KadkhodaieSimoncelli", "OTODE")
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
    shared = {k: v for k, v in spec.items() if k not in ("vp", "rf", "n", "operator")}
    return {**METHODS[name].small, **shared, **spec.get(path, {})}


def method(name: str, path: str) -> Method:
    return METHODS[name].cls(**settings(name, path))


def num_draws(name: str) -> int:
    return int(SETTINGS.get(name, {}).get("n", N_SAMPLES))


def operator_kind(name: str) -> str:
    """The operator kind of method ``name``'s rows (``"dense"`` unless its setting says otherwise)."""
    return SETTINGS.get(name, {}).get("operator", "dense")


@functools.lru_cache(maxsize=None)
def problem(kind: str = "gaussian", path: str = "vp", operator: str = "dense", sigma: float = 0.1) -> E.ExactProblem:
    """The shared problems: ``gaussian``, ``mixture`` (= ``mixture-range``) and ``mixture-null``
    (:func:`lit_ip.evaluation.exact.mixture_problem` layouts), d = 16, m = 8, sigma = 0.1 unless
    ``sigma`` says otherwise (e.g. 1e-3: the noiseless setting of replacement methods)."""
    if kind == "gaussian":
        return E.gaussian_problem(path, operator=operator, sigma=sigma)
    layout = kind.split("-")[1] if "-" in kind else "range"
    return E.mixture_problem(path, layout, operator=operator, sigma=sigma)


@functools.lru_cache(maxsize=None)
def _draws(name, kind, path, n, seed, operator, sigma):
    return E.draws(method(name, path), problem(kind, path, operator, sigma), n, seed)


def run(name: str, kind: str = "gaussian", path: str = "vp", n: Optional[int] = None, seed: int = 1,
        operator: Optional[str] = None, sigma: float = 0.1):
    """Draws of registered method ``name`` (its :func:`settings`) on :func:`problem` ``kind`` with
    ``operator`` (default: :func:`operator_kind`), cached per session: tests bounding the same run
    share it."""
    return _draws(name, kind, path, n or num_draws(name), seed, operator or operator_kind(name), float(sigma))


def errors(name: str, kind: str = "gaussian", path: str = "vp", n: Optional[int] = None, seed: int = 1,
           operator: Optional[str] = None, sigma: float = 0.1) -> dict:
    """:func:`lit_ip.evaluation.exact.all_errors` of :func:`run`."""
    operator = operator or operator_kind(name)
    return E.all_errors(run(name, kind, path, n, seed, operator, sigma), problem(kind, path, operator, float(sigma)))


__all__ = ["DEFAULT", "SETTINGS", "BREADTH", "N_SAMPLES", "POINT_ESTIMATES", "settings", "method", "num_draws",
           "operator_kind", "problem",
           "run", "errors"]
