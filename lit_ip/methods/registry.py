"""The one registry of methods: every cross-method test and benchmark runs over :data:`METHODS`.

Each entry is a :class:`MethodCase`: the class and the small settings the cross-method tests use
(few steps, so the whole registry runs in seconds). Adding a method is one file plus one entry
here; the tests in ``tests/test_method_cases.py`` then check it builds from a ``class_path``
config, runs on VP and rectified-flow network priors in float32, refuses operators without the
properties it ``requires`` (naming both), rejects bad measurements, gives the same samples alone
and in a batch, honours the ``num_samples`` seeding contract, and counts the network evaluations
its :meth:`~lit_ip.methods.base.Method.expected_nfe` declares.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .base import Method, Unconditional
from .daps import DAPS
from .ddnm import DDNM, DDNMPlus
from .ddrm import DDRM
from .diffpir import DiffPIR
from .dmplug import DMPlug
from .dmps import DMPS
from .dps import DPS
from .dpsw import DPSw
from .exact_inpainting import ExactInpainting
from .moment_matching import MomentMatching
from .pigdm import PiGDM
from .reddiff import REDDiff
from .smc import TDS
from .score_sde import ScoreSDE
from .score_ald import ScoreALD
from .snips import SNIPS
from .ilvr import ILVR
from .repaint import RePaint
from .ddnm_timetravel import DDNMTimeTravel
from .mcg import MCG
from .dds import DDS
from .mpgd import MPGD
from .dsg import DSG
from .kadkhodaie import KadkhodaieSimoncelli
from .otode import OTODE
from .mcgdiff import MCGdiff
from .fps import FPS, FPSSMC
from .pmc import PMCPnP, PMCRED
from .smcdiff import SMCDiff
from .pnpdm import PnPDM


@dataclass(frozen=True)
class MethodCase:
    """A method and the settings of its quick test case.

    Args:
        cls: the method class.
        small: constructor arguments of the quick case.
        analytic_only: the case needs a prior with closed-form structure beyond a denoiser (e.g. a
            non-isotropic denoiser) and refuses network priors with a message saying so.
    """

    cls: type
    small: dict = field(default_factory=dict)
    analytic_only: bool = False

    def build(self, **overrides) -> Method:
        return self.cls(**{**self.small, **overrides})

    def config(self, **overrides) -> dict:
        """The ``class_path`` / ``init_args`` form of the case (as in a YAML config)."""
        return {"class_path": f"{self.cls.__module__}.{self.cls.__name__}",
                "init_args": {**self.small, **overrides}}


METHODS: dict[str, MethodCase] = {
    "Unconditional": MethodCase(Unconditional, dict(num_steps=6)),
    "DPS": MethodCase(DPS, dict(num_steps=6, zeta=0.05)),
    "PiGDM": MethodCase(PiGDM, dict(num_steps=6)),
    "DMPS": MethodCase(DMPS, dict(num_steps=6)),
    "DDRM": MethodCase(DDRM, dict(num_steps=6)),
    "DDNM": MethodCase(DDNM, dict(num_steps=6)),
    "DDNMPlus": MethodCase(DDNMPlus, dict(num_steps=6)),
    "MomentMatching": MethodCase(MomentMatching, dict(num_steps=6, cg_iters=3)),
    "DiffPIR": MethodCase(DiffPIR, dict(num_steps=6)),
    "DPSw": MethodCase(DPSw, dict(num_steps=6)),
    "DPSw-exact": MethodCase(DPSw, dict(num_steps=6, mode="exact"), analytic_only=True),
    "REDDiff": MethodCase(REDDiff, dict(num_steps=6, lr=0.02)),
    "DAPS": MethodCase(DAPS, dict(num_steps=4, ode_steps=2, langevin_steps=3, lr=1e-3)),
    "TDS": MethodCase(TDS, dict(num_steps=6, num_particles=3)),
    "DMPlug": MethodCase(DMPlug, dict(num_steps=2, iterations=4, lr=2e-2, select="last")),
    "ScoreSDE": MethodCase(ScoreSDE, dict(num_steps=6)),
    "ScoreALD": MethodCase(ScoreALD, dict(num_steps=4, langevin_steps=2)),
    "SNIPS": MethodCase(SNIPS, dict(num_steps=4, langevin_steps=2)),
    "ILVR": MethodCase(ILVR, dict(num_steps=6)),
    "RePaint": MethodCase(RePaint, dict(num_steps=6, jump=2, repeats=2)),
    "DDNMTimeTravel": MethodCase(DDNMTimeTravel, dict(num_steps=6, jump=2, repeats=2)),
    "MCG": MethodCase(MCG, dict(num_steps=6, zeta=0.05)),
    "DDS": MethodCase(DDS, dict(num_steps=6, cg_iters=2)),
    "MPGD": MethodCase(MPGD, dict(num_steps=6, lr=0.5)),
    "DSG": MethodCase(DSG, dict(num_steps=6, w=0.2)),
    "KadkhodaieSimoncelli": MethodCase(KadkhodaieSimoncelli, dict(num_steps=6, h0=0.2, beta=0.5, sigma_min=0.05)),
    "OTODE": MethodCase(OTODE, dict(num_steps=6)),
    "ExactInpainting": MethodCase(ExactInpainting, dict(num_steps=6), analytic_only=True),
    "MCGdiff": MethodCase(MCGdiff, dict(num_steps=6, num_particles=4, particle_chunk=3)),
    "FPS": MethodCase(FPS, dict(num_steps=6)),
    "FPSSMC": MethodCase(FPSSMC, dict(num_steps=6, num_particles=4, particle_chunk=3)),
    "PMCRED": MethodCase(PMCRED, dict(num_steps=4, steps_per_level=2)),
    "PMCPnP": MethodCase(PMCPnP, dict(num_steps=4, steps_per_level=2)),
    "SMCDiff": MethodCase(SMCDiff, dict(num_steps=6, num_particles=4, particle_chunk=3)),
    "PnPDM": MethodCase(PnPDM, dict(num_steps=3, iterations=3)),
}


def build(name: str, **overrides) -> Method:
    """The registered method ``name`` with its quick-case settings (and ``overrides``)."""
    if name not in METHODS:
        raise ValueError(f"unknown method case {name!r}; known: {sorted(METHODS)}")
    return METHODS[name].build(**overrides)


__all__ = ["MethodCase", "METHODS", "build"]
