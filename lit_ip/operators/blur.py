"""Separable blur (deblurring) with same-size output and an exact functional SVD.

The 2-D kernel is the outer product ``k k^T`` of a 1-D kernel, applied as
``Y_c = K X_c K^T`` where ``K`` is the ``(n, n)`` 1-D correlation matrix under the chosen
boundary condition (``reflect`` by default, like DPS's reflection padding; ``zero`` as in
DDRM, Kawar et al. 2022, App. B; also ``symmetric``, ``circular``). Every boundary gives a
square ``K``, so the SVD is exact from the SVDs of the 1-D matrices
(:class:`~lit_ip.operators.separable.SeparableOperator`). Singular values are not
truncated: a wide Gaussian has tiny ones, and ``pinv`` only zeroes those below 1e-8.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from .separable import SeparableOperator, conv_matrix


class SeparableBlur(SeparableOperator):
    """Blur by the separable kernel ``k k^T`` (``k`` odd length, centred)."""

    def __init__(self, kernel: Sequence[float], in_shape: Sequence[int], boundary: str = "reflect"):
        k = torch.as_tensor(kernel, dtype=torch.float64).flatten()
        if k.numel() % 2 != 1:
            raise ValueError(f"{type(self).__name__} needs an odd kernel size (centred, same-size output), "
                             f"got {k.numel()}")
        if in_shape is None or len(in_shape) != 3:
            raise ValueError(f"{type(self).__name__} needs in_shape = [C, H, W], got {in_shape}")
        _, H, W = (int(s) for s in in_shape)
        super().__init__(conv_matrix(k.tolist(), H, boundary), conv_matrix(k.tolist(), W, boundary), in_shape)
        self.register_buffer("kernel", k.to(torch.get_default_dtype()))
        self.boundary = boundary


class GaussianBlur(SeparableBlur):
    """Gaussian blur ``k_t ∝ exp(-(t - r)^2 / (2 sigma^2))``, normalised to sum 1 per axis.

    Args:
        sigma: standard deviation in pixels (DPS: 3.0 with a 61-pixel kernel).
        kernel_size: odd; default ``2 * ceil(3 sigma) + 1``.
        in_shape: ``[C, H, W]``.
        boundary: ``reflect`` | ``zero`` | ``symmetric`` | ``circular``.
    """

    def __init__(self, sigma: float, kernel_size: Optional[int] = None, in_shape: Sequence[int] = None,
                 boundary: str = "reflect"):
        if not float(sigma) > 0:
            raise ValueError(f"GaussianBlur sigma must be > 0, got {sigma}")
        size = 2 * math.ceil(3 * float(sigma)) + 1 if kernel_size is None else int(kernel_size)
        t = torch.arange(size, dtype=torch.float64) - size // 2
        k = torch.exp(-t ** 2 / (2 * float(sigma) ** 2))
        super().__init__(k / k.sum(), in_shape, boundary)
        self.sigma = float(sigma)

    def extra_repr(self):
        return f"sigma={self.sigma}, kernel_size={self.kernel.numel()}, in_shape={self.in_shape}, boundary={self.boundary}"


class UniformBlur(SeparableBlur):
    """Uniform (box) blur: ``k_t = 1 / kernel_size`` per axis (DDRM's deblurring uses 9).

    Args:
        kernel_size: odd.
        in_shape: ``[C, H, W]``.
        boundary: ``reflect`` | ``zero`` | ``symmetric`` | ``circular``.
    """

    def __init__(self, kernel_size: int, in_shape: Sequence[int], boundary: str = "reflect"):
        if int(kernel_size) < 1:
            raise ValueError(f"UniformBlur kernel_size must be >= 1, got {kernel_size}")
        super().__init__(torch.full((int(kernel_size),), 1.0 / int(kernel_size)), in_shape, boundary)

    def extra_repr(self):
        return f"kernel_size={self.kernel.numel()}, in_shape={self.in_shape}, boundary={self.boundary}"
