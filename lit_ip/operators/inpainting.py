"""Inpainting: ``y = m * x`` with a binary mask ``m`` (1 = observed, 0 = missing).

The measurement stays image-shaped, with zeros at the missing pixels (easy to
display and batch). Then the SVD is trivial (DDRM, Kawar et al. 2022, App. B):
``U = V = I`` on the image grid and the singular values are the mask itself, so
``pinv(y) = m * y`` and ``A pinv(A x) = A x``.

Random and box masks are *families*: :meth:`InpaintingFamily.bind` draws one mask
per sample index from ``SampleRNG.for_indices(indices, seed, stream="operator")``, so an index
always gets the same mask whatever the batch it is in. Binding an index list with
repeats (``[i, i, j, j]``) gives repeated masks, e.g. for several posterior samples.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor

from ..rng import SampleRNG
from .base import SVDOperator
from .linalg import expect_shape


def _shape3(in_shape, owner: str) -> tuple[int, int, int]:
    if in_shape is None or len(in_shape) != 3:
        raise ValueError(f"{owner} needs in_shape = [C, H, W], got {in_shape}")
    return tuple(int(s) for s in in_shape)


class MaskInpainting(SVDOperator):
    """``y = m * x`` for a given mask of shape ``(1 or B, 1 or C, H, W)``.

    Row ``i`` of the mask applies to row ``i`` of the batch (a batch-1 mask is shared by
    all rows; a 1-channel mask by all channels). Singular values ``(B or 1, C*H*W)`` are
    the mask entries (0 or 1), ``U = V = I``.

    Args:
        mask: tensor (or nested list) of zeros and ones.
        in_shape: ``[C, H, W]``; inferred from the mask (with C=1) when omitted.
    """

    def __init__(self, mask, in_shape: Sequence[int] = None):
        mask = torch.as_tensor(mask)
        if mask.dim() == 3:
            mask = mask[None]
        if mask.dim() != 4:
            raise ValueError(f"mask must have shape (B, 1 or C, H, W), got {tuple(mask.shape)}")
        if in_shape is None:
            in_shape = (mask.shape[1],) + tuple(mask.shape[2:])
        C, H, W = _shape3(in_shape, "MaskInpainting")
        super().__init__((C, H, W))
        if tuple(mask.shape[2:]) != (H, W) or mask.shape[1] not in (1, C):
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not fit images of shape {(C, H, W)}")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("inpainting mask must contain only 0 (missing) and 1 (observed)")
        self.register_buffer("mask", mask.to(torch.get_default_dtype()))

    def _m_for(self, t: Tensor, what: str) -> Tensor:
        expect_shape(t, self.in_shape, "MaskInpainting", what)
        b = self.mask.shape[0]
        if b != 1 and b != t.shape[0]:
            raise ValueError(f"MaskInpainting holds {b} per-sample masks but got a batch of {t.shape[0]}; "
                             f"bind the family to this batch's indices")
        return self.mask.to(t)

    def forward(self, x: Tensor) -> Tensor:
        return self._m_for(x, "x") * x

    def adjoint(self, y: Tensor) -> Tensor:
        return self._m_for(y, "y") * y

    def pinv(self, y: Tensor) -> Tensor:
        return self._m_for(y, "y") * y

    def vt(self, x: Tensor) -> Tensor:
        expect_shape(x, self.in_shape, "MaskInpainting", "x")
        return x.flatten(1)

    def v(self, z: Tensor) -> Tensor:
        expect_shape(z, (self.num_pixels(),), "MaskInpainting", "z")
        return z.reshape(z.shape[0], *self.in_shape)

    ut = vt
    u = v

    def singular_values(self) -> Tensor:
        return self.mask.expand(-1, self.in_shape[0], -1, -1).flatten(1)

    def output_shape(self, in_shape):
        return tuple(in_shape)  # no dry run: a batch-1 input would not fit B per-sample masks

    def observed_fraction(self) -> Tensor:
        """Fraction of observed pixels per mask row."""
        return self.mask.flatten(1).mean(1)


class InpaintingFamily(SVDOperator):
    """A family of masks, one per sample index; use :meth:`bind` before applying it.

    Calling ``forward`` (or any SVD function) on the unbound family raises: a mask
    depends on the sample index, which only ``bind(indices, seed)`` knows.
    """

    def __init__(self, in_shape: Sequence[int]):
        super().__init__(_shape3(in_shape, type(self).__name__))

    def draw_mask(self, g: torch.Generator) -> Tensor:  # pragma: no cover - abstract
        """One ``(1, H, W)`` mask (1 = observed) from generator ``g``."""
        raise NotImplementedError

    def bind(self, indices: Sequence[int], seed: int = 0) -> MaskInpainting:
        rng = SampleRNG.for_indices(indices, seed, stream="operator")
        masks = torch.stack([self.draw_mask(g) for g in rng.generators])
        return MaskInpainting(masks, self.in_shape)

    def output_shape(self, in_shape):
        return tuple(in_shape)

    def _unbound(self, *args, **kwargs):
        raise RuntimeError(f"{type(self).__name__} draws one mask per sample: call "
                           f".bind(indices, seed) to get the operator for a batch before using it")

    forward = adjoint = pinv = vt = v = ut = u = singular_values = _unbound


class RandomInpainting(InpaintingFamily):
    """Drop ``round(fraction_missing * H * W)`` pixels chosen uniformly at random (all channels).

    Args:
        fraction_missing: in [0, 1) (e.g. 0.7 or 0.92 as in the papers).
        in_shape: ``[C, H, W]``.
    """

    def __init__(self, fraction_missing: float, in_shape: Sequence[int]):
        super().__init__(in_shape)
        if not 0 <= float(fraction_missing) < 1:
            raise ValueError(f"fraction_missing must be in [0, 1), got {fraction_missing}")
        self.fraction_missing = float(fraction_missing)

    def draw_mask(self, g):
        _, H, W = self.in_shape
        k = round(self.fraction_missing * H * W)
        mask = torch.ones(H * W)
        mask[torch.randperm(H * W, generator=g)[:k]] = 0
        return mask.view(1, H, W)

    def extra_repr(self):
        return f"fraction_missing={self.fraction_missing}, in_shape={self.in_shape}"


class BoxInpainting(InpaintingFamily):
    """Drop a ``box_size`` rectangle (e.g. 128x128 on 256x256 images, as in DPS).

    Args:
        box_size: an int (square) or ``[h, w]``.
        in_shape: ``[C, H, W]``.
        random_position: draw the top-left corner uniformly per sample; else centre it.
    """

    def __init__(self, box_size: Union[int, Sequence[int]], in_shape: Sequence[int],
                 random_position: bool = True):
        super().__init__(in_shape)
        bh, bw = (box_size, box_size) if isinstance(box_size, int) else tuple(box_size)
        _, H, W = self.in_shape
        if not (0 < bh <= H and 0 < bw <= W):
            raise ValueError(f"box_size {(bh, bw)} must be positive and fit in images {(H, W)}")
        self.box_size = (int(bh), int(bw))
        self.random_position = bool(random_position)

    def draw_mask(self, g):
        _, H, W = self.in_shape
        bh, bw = self.box_size
        if self.random_position:
            top = int(torch.randint(0, H - bh + 1, (1,), generator=g))
            left = int(torch.randint(0, W - bw + 1, (1,), generator=g))
        else:
            top, left = (H - bh) // 2, (W - bw) // 2
        mask = torch.ones(1, H, W)
        mask[:, top:top + bh, left:left + bw] = 0
        return mask

    def extra_repr(self):
        return f"box_size={self.box_size}, in_shape={self.in_shape}, random_position={self.random_position}"
