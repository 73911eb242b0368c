"""Forward operators and noise models (see ``base.py`` for the contract)."""
from .base import LinearOperator, Operator, SVDOperator
from .dense import DenseMatrixOperator
from .identity import Identity
from .inpainting import BoxInpainting, InpaintingFamily, MaskInpainting, RandomInpainting
from .noise import GaussianNoise, NoiseModel, PoissonNoise

__all__ = [
    "Operator", "LinearOperator", "SVDOperator", "DenseMatrixOperator",
    "Identity", "MaskInpainting", "InpaintingFamily", "RandomInpainting", "BoxInpainting",
    "NoiseModel", "GaussianNoise", "PoissonNoise",
]
