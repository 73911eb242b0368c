"""Forward operators and noise models (see ``base.py`` for the contract)."""
from .base import LinearOperator, Operator, SVDOperator
from .blur import GaussianBlur, SeparableBlur, UniformBlur
from .colorization import Colorization
from .compose import Compose
from .compressed_sensing import CompressedSensing
from .dense import DenseMatrixOperator
from .identity import Identity
from .inpainting import BoxInpainting, InpaintingFamily, MaskInpainting, RandomInpainting
from .linalg import dense_matrix
from .noise import GaussianNoise, NoiseModel, PoissonNoise
from .registry import OPERATORS, make_operator
from .resize import AveragePoolSR, BicubicSR
from .separable import SeparableOperator

__all__ = [
    "Operator", "LinearOperator", "SVDOperator", "DenseMatrixOperator", "SeparableOperator",
    "Identity", "MaskInpainting", "InpaintingFamily", "RandomInpainting", "BoxInpainting",
    "AveragePoolSR", "BicubicSR", "SeparableBlur", "GaussianBlur", "UniformBlur",
    "Colorization", "CompressedSensing", "Compose",
    "NoiseModel", "GaussianNoise", "PoissonNoise",
    "OPERATORS", "make_operator", "dense_matrix",
]
