"""Named factories building every operator at a given (small) image shape.

``make_operator(name, in_shape)`` is what the operator tests iterate over; other tests
and notebooks can use it to get one of each kind. Families (random masks) come
unbound: call ``.bind(indices, seed)`` before applying them.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .base import Operator
from .blur import GaussianBlur, UniformBlur
from .colorization import Colorization
from .compose import Compose
from .compressed_sensing import CompressedSensing
from .dense import DenseMatrixOperator
from .identity import Identity
from .inpainting import BoxInpainting, MaskInpainting, RandomInpainting
from .resize import AveragePoolSR, BicubicSR

DEFAULT_SHAPE = (3, 8, 8)


def _fixed_mask(shape):
    _, H, W = shape
    g = torch.Generator().manual_seed(0)
    return (torch.rand(1, 1, H, W, generator=g) > 0.4).float()


def _low_rank_matrix(shape):
    """``(n/2, n)`` matrix of rank ``n/4``: rank-deficient in both directions."""
    n = math.prod(shape)
    g = torch.Generator().manual_seed(1)
    a = torch.randn(n // 2, n // 4, generator=g, dtype=torch.float64)
    b = torch.randn(n // 4, n, generator=g, dtype=torch.float64)
    return a @ b / n


def _colorization(shape):
    c = shape[0]
    return Colorization((0.299, 0.587, 0.114) if c == 3 else [1.0 / c] * c, shape)


def _gray(shape):
    return (1,) + tuple(shape[1:])


OPERATORS: dict[str, Callable[[Sequence[int]], Operator]] = {
    "identity": lambda s: Identity(s),
    "inpaint_mask": lambda s: MaskInpainting(_fixed_mask(s), s),
    "inpaint_random": lambda s: RandomInpainting(0.5, s),
    "inpaint_box": lambda s: BoxInpainting(max(1, s[1] // 2), s),
    "sr_avgpool": lambda s: AveragePoolSR(2, s),
    "sr_bicubic": lambda s: BicubicSR(2, s),
    "blur_gaussian": lambda s: GaussianBlur(1.0, 5, s),
    "blur_uniform_zero": lambda s: UniformBlur(3, s, boundary="zero"),
    "colorization": _colorization,
    "compressed_sensing": lambda s: CompressedSensing(math.prod(s) // 4, s, seed=0),
    "dense": lambda s: DenseMatrixOperator(_low_rank_matrix(s), s),
    "compose_blur_sr": lambda s: Compose(AveragePoolSR(2, s), GaussianBlur(1.0, 5, s)),
    "compose_inpaint_color": lambda s: Compose(RandomInpainting(0.5, _gray(s)), _colorization(s)),
}


def make_operator(name: str, in_shape: Sequence[int] = DEFAULT_SHAPE) -> Operator:
    """Build registry operator ``name`` for images of ``in_shape`` (``[C, H, W]``)."""
    if name not in OPERATORS:
        raise KeyError(f"unknown operator {name!r}; known: {sorted(OPERATORS)}")
    return OPERATORS[name](tuple(int(d) for d in in_shape))
