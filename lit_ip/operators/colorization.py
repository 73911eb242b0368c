"""Colorization: the measurement is the grayscale image ``y = sum_c w_c x_c``."""
from __future__ import annotations

from typing import Sequence

from .blockwise import BlockRankOneOperator


class Colorization(BlockRankOneOperator):
    """``y = w^T x_p`` at every pixel ``p`` (output shape ``(1, H, W)``).

    Per pixel ``A = w^T``: one singular value ``|w|``, right singular vector ``w / |w|``,
    completed by a Householder basis of the channel space (DDRM, Kawar et al. 2022, App. B).

    Args:
        weights: one weight per channel (default ITU-R BT.601 luma 0.299, 0.587, 0.114).
        in_shape: ``[C, H, W]`` with ``C = len(weights)``.
    """

    def __init__(self, weights: Sequence[float] = (0.299, 0.587, 0.114), in_shape: Sequence[int] = None):
        weights = [float(w) for w in weights]
        if in_shape is None or len(in_shape) != 3 or int(in_shape[0]) != len(weights):
            raise ValueError(f"Colorization needs in_shape = [C, H, W] with C = {len(weights)} "
                             f"(one per weight), got {in_shape}")
        super().__init__(weights, in_shape)
        _, H, W = self.in_shape
        self.out_shape = (1, H, W)

    def to_blocks(self, x):
        B, C, H, W = x.shape
        return x.permute(0, 2, 3, 1).reshape(B, H * W, C)

    def from_blocks(self, b):
        C, H, W = self.in_shape
        return b.reshape(b.shape[0], H, W, C).permute(0, 3, 1, 2)

    def extra_repr(self):
        return f"weights={self.w.tolist()}, in_shape={self.in_shape}"
