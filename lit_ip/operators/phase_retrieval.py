"""Fourier phase retrieval: ``y = |F(pad(z))|`` with ``z = lo + (hi - lo) x`` (oversampled magnitude).

``F`` is the centred orthonormal 2-D DFT per channel (``fftshift(fft2(., norm="ortho"))``),
``pad`` zero-pads the image to ``oversample`` times its size (or by ``pad`` pixels per side).
Non-linear but differentiable (almost everywhere), with no pseudo-inverse. ``y`` does not
change under a global sign flip of ``z``, a translation of ``z`` inside the padded support, or
the point reflection ``z(n) -> z(-n)`` (the trivial ambiguities of phase retrieval).

The DPS protocol (Chung et al. 2023) applies it to images in ``[-1, 1]`` (``data_range=(-1, 1)``)
with ``pad = oversample / 8 * 256 = 64`` pixels per side for ``oversample = 2`` (a 1.5x grid).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Operator


class PhaseRetrieval(Operator):
    """Oversampled Fourier magnitude.

    Args:
        oversample: padded size / image size per axis (2.0: the classical twofold oversampling).
        pad: pixels of zeros on each side instead (overrides ``oversample``; DPS uses 64 on 256).
        data_range: the units the magnitude is taken in: ``(0, 1)`` (default) or ``(-1, 1)`` as
            in the DPS code.
        in_shape: ``[C, H, W]`` or None.
    """

    linear = False
    differentiable = True

    def __init__(self, oversample: float = 2.0, pad: Optional[int] = None,
                 data_range: Sequence[float] = (0.0, 1.0), in_shape: Optional[Sequence[int]] = None):
        super().__init__(in_shape)
        if pad is None and not float(oversample) >= 1:
            raise ValueError(f"oversample must be >= 1, got {oversample}")
        if pad is not None and int(pad) < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        lo, hi = (float(v) for v in data_range)
        if not hi > lo:
            raise ValueError(f"data_range must be (lo, hi) with hi > lo, got {tuple(data_range)}")
        self.oversample, self.pad = float(oversample), None if pad is None else int(pad)
        self.data_range = (lo, hi)

    def padding(self, H: int, W: int) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) zero padding for an ``H x W`` image."""
        if self.pad is not None:
            return (self.pad,) * 4
        ph, pw = round((self.oversample - 1) * H), round((self.oversample - 1) * W)
        return (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        lo, hi = self.data_range
        z = F.pad(lo + (hi - lo) * x, self.padding(*x.shape[-2:]))
        spec = torch.fft.fftshift(torch.fft.fft2(z, norm="ortho"), dim=(-2, -1))
        return spec.abs()

    def extra_repr(self):
        size = f"pad={self.pad}" if self.pad is not None else f"oversample={self.oversample}"
        return f"{size}, data_range={self.data_range}, in_shape={self.in_shape}"
