"""The identity operator (denoising): ``y = x``."""
from __future__ import annotations


import torch
from torch import Tensor

from .base import SVDOperator


class Identity(SVDOperator):
    """``A = I`` (denoising, e.g. DPS-w Prop. 4.1): ``U = V = I``, all singular values 1.

    ``forward``, ``adjoint`` and ``pinv`` accept any shape when ``in_shape`` is None;
    the SVD functions need ``in_shape`` (they must know ``n``).

    Args:
        in_shape: image shape ``(C, H, W)`` as a list, or None.
    """

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return x

    def adjoint(self, y: Tensor) -> Tensor:
        self.check_input(y, "y")
        return y

    def pinv(self, y: Tensor) -> Tensor:
        self.check_input(y, "y")
        return y

    def vt(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return x.flatten(1)

    def v(self, z: Tensor) -> Tensor:
        self.num_pixels()  # raises a clear error without in_shape
        return z.reshape(z.shape[0], *self.in_shape)

    ut = vt
    u = v

    def singular_values(self) -> Tensor:
        return torch.ones(1, self.num_pixels())
