"""Priors: noise paths and the prior wrappers exposing one interface (see ``base.py``)."""
from .analytic import EmpiricalPrior, GaussianMixturePrior, GaussianPrior
from .base import Prior
from .betas import make_betas
from .loaders import ADMPrior, DiffusersPrior
from .network import NetworkPrior
from .paths import NoisePath, RectifiedFlowPath, VEPath, VPPath, path_from_config
from .pretrained import PretrainedPrior, shipped_priors
from .synthetic import RandomGaussianMixturePrior, RandomGaussianPrior

__all__ = [
    "Prior", "NetworkPrior", "PretrainedPrior", "ADMPrior", "DiffusersPrior",
    "GaussianPrior", "GaussianMixturePrior", "EmpiricalPrior", "RandomGaussianPrior", "RandomGaussianMixturePrior",
    "NoisePath", "VPPath", "VEPath", "RectifiedFlowPath", "path_from_config", "make_betas", "shipped_priors",
]
