"""High-dynamic-range clipping: ``y = clip(c + s (x - c), 0, 1)`` (a sensor that saturates).

The DDRM-style HDR task on ``[-1, 1]`` images, ``clip(x_n / 0.5, -1, 1)``, is ``s = 2`` around
the mid-grey ``c = 0.5`` in [0, 1] units. Non-linear, differentiable almost everywhere (zero
gradient where clipped). ``h_dagger(y) = c + (y - c) / s`` inverts the unclipped part, so
``h(h_dagger(h(x))) = h(x)`` exactly (PiGDM, Song et al. 2023, App. A.5).
"""
from __future__ import annotations

from typing import Optional, Sequence

from torch import Tensor

from .base import Operator


class HDRClip(Operator):
    """Scale about ``center`` by ``scale`` and clip to [0, 1].

    Args:
        scale: exposure gain ``s > 0`` (2.0: half of the range saturates for uniform data).
        center: the fixed point ``c`` in [0, 1].
        in_shape: ``[C, H, W]`` or None.
    """

    linear = False
    differentiable = True

    def __init__(self, scale: float = 2.0, center: float = 0.5, in_shape: Optional[Sequence[int]] = None):
        super().__init__(in_shape)
        if not float(scale) > 0:
            raise ValueError(f"HDR scale must be > 0, got {scale}")
        if not 0 <= float(center) <= 1:
            raise ValueError(f"HDR center must be in [0, 1], got {center}")
        self.scale, self.center = float(scale), float(center)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return (self.center + self.scale * (x - self.center)).clamp(0, 1)

    def h_dagger(self, y: Tensor) -> Tensor:
        return self.center + (y - self.center) / self.scale

    def extra_repr(self):
        return f"scale={self.scale}, center={self.center}, in_shape={self.in_shape}"
