"""Quantisation to ``L = 2^bits`` levels: ``y = round(x (L - 1)) / (L - 1)`` on ``clip(x, 0, 1)``.

Non-linear and not differentiable (a staircase). ``h_dagger`` is the identity: ``y`` already
lies on the grid, so ``h(h_dagger(h(x))) = h(x)`` exactly (PiGDM, Song et al. 2023, Sec. 3.2,
whose floor ``h(x) = floor(x)`` is the same construction up to an offset of half a level).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from .base import Operator


class Quantize(Operator):
    """Uniform quantisation of [0, 1] images to ``bits`` bits per value.

    Args:
        bits: 1..16 (e.g. 3 gives 8 grey levels).
        in_shape: ``[C, H, W]`` or None.
    """

    linear = False
    differentiable = False

    def __init__(self, bits: int = 3, in_shape: Optional[Sequence[int]] = None):
        super().__init__(in_shape)
        if not 1 <= int(bits) <= 16:
            raise ValueError(f"bits must be in [1, 16], got {bits}")
        self.bits = int(bits)
        self.levels = 2 ** self.bits

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        n = self.levels - 1
        return torch.round(x.clamp(0, 1) * n) / n

    def h_dagger(self, y: Tensor) -> Tensor:
        return y

    def extra_repr(self):
        return f"bits={self.bits}, in_shape={self.in_shape}"
