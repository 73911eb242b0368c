"""Posterior-sampling methods (see ``base.py`` for the shared loop)."""
from .base import GuidedMethod, Method, Problem, StepState, Unconditional
from .ddnm import DDNM, DDNMPlus
from .ddrm import DDRM
from .dmps import DMPS
from .dps import DPS
from .moment_matching import MomentMatching
from .pigdm import PiGDM

__all__ = [
    "Method", "GuidedMethod", "Problem", "StepState", "Unconditional",
    "DPS", "PiGDM", "DMPS", "DDRM", "DDNM", "DDNMPlus", "MomentMatching",
]
