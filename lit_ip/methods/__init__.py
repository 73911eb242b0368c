"""Posterior-sampling methods (see ``base.py`` for the preamble, the guided loop and its hooks).

Explicit-approximation methods share :class:`GuidedMethod`'s loop; whole-loop methods
(RED-diff, DAPS, DMPlug, TDS) own theirs and reuse the same prior, operator, schedule and data fit.
:mod:`lit_ip.methods.registry` lists every method with the cases the cross-method tests run.
"""
from .base import GuidedMethod, Method, Problem, StepState, Unconditional
from .daps import DAPS
from .ddnm import DDNM, DDNMPlus
from .ddrm import DDRM
from .diffpir import DiffPIR
from .dmplug import DMPlug, DMPlugResult
from .dmps import DMPS
from .dps import DPS
from .dpsw import DPSw
from .exact_inpainting import ExactInpainting
from .likelihood import DataFit, GaussianFit, PoissonFit, data_fit
from .moment_matching import MomentMatching
from .pigdm import PiGDM
from .reddiff import REDDiff
from .smc import SMC, TDS
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

__all__ = [
    "Method", "GuidedMethod", "Problem", "StepState", "Unconditional",
    "DPS", "PiGDM", "DMPS", "DDRM", "DDNM", "DDNMPlus", "MomentMatching",
    "DiffPIR", "REDDiff", "DAPS", "DPSw", "DMPlug", "DMPlugResult", "TDS", "SMC",
    "DataFit", "GaussianFit", "PoissonFit", "data_fit",
    "ScoreSDE", "ScoreALD", "SNIPS", "ILVR", "RePaint", "DDNMTimeTravel", "MCG", "DDS", "MPGD", "DSG",
    "KadkhodaieSimoncelli", "OTODE",
    "ExactInpainting",
    "MCGdiff", "FPS", "FPSSMC", "PMCRED", "PMCPnP", "SMCDiff", "PnPDM",
]
