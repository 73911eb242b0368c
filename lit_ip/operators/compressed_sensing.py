"""Compressed sensing with a random Gaussian matrix."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .dense import DenseMatrixOperator

#: largest ``n = C*H*W`` accepted: the exact SVD stores a dense ``(n, n)`` float64 ``V``
MAX_PIXELS = 8192


class CompressedSensing(DenseMatrixOperator):
    """``y = M vec(x)`` with ``M_ij ~ N(0, 1/m)`` i.i.d., ``m = num_measurements``
    (so ``E|M x|^2 = |x|^2``); output shape ``(m,)``. The matrix is fixed by ``seed``
    and shared by all samples; its exact SVD comes from :class:`DenseMatrixOperator`.
    For small images only (``C*H*W <= MAX_PIXELS``).

    Args:
        num_measurements: ``m >= 1``.
        in_shape: ``[C, H, W]``.
        seed: seed of the matrix.
    """

    def __init__(self, num_measurements: int, in_shape: Sequence[int], seed: int = 0):
        if in_shape is None:
            raise ValueError("CompressedSensing needs in_shape = [C, H, W]")
        n, m = math.prod(int(s) for s in in_shape), int(num_measurements)
        if m < 1:
            raise ValueError(f"CompressedSensing needs num_measurements >= 1, got {num_measurements}")
        if n > MAX_PIXELS:
            raise ValueError(f"CompressedSensing stores a dense ({n}, {n}) SVD factor; images of {n} "
                             f"values exceed the limit of {MAX_PIXELS}")
        g = torch.Generator().manual_seed(int(seed))
        super().__init__(torch.randn(m, n, generator=g, dtype=torch.float64) / math.sqrt(m), in_shape)
        self.num_measurements, self.seed = m, int(seed)

    def extra_repr(self):
        return f"num_measurements={self.num_measurements}, in_shape={self.in_shape}, seed={self.seed}"
