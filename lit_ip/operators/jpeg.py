"""JPEG compression at quality ``q`` in torch (baseline JFIF, the IJG / libjpeg conventions).

Encoder: ``v = round(255 x)``; JFIF colour transform to ``(Y, Cb, Cr)``; 4:2:0 chroma
subsampling (2x2 means, optional); level shift ``-128``; orthonormal 8x8 DCT-II per block
(equal to JPEG's ``F(u,v) = 1/4 C(u) C(v) sum f cos cos``); quantisation
``q_uv = round(F_uv / Q_uv)`` with the Annex K tables scaled by quality (IJG:
``s = 5000 / q`` below 50, ``200 - 2 q`` above; ``Q = clip(floor((Q_base s + 50) / 100), 1, 255)``).
Decoder: ``F = q Q``; inverse DCT; ``+128``; nearest-neighbour chroma upsampling (libjpeg's
default "fancy" triangle upsampling differs slightly); inverse colour transform; rounding
and clipping to ``[0, 255]``; ``/ 255``.

As an operator (PiGDM, Song et al. 2023, Sec. 3.2) it is non-linear and not differentiable
(rounding); its generalised pseudo-inverse is the decoder, since decoding does not modify the
quantised values: ``h(h_dagger(h(x))) ~= h(x)`` (exact up to pixel rounding and clipping).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Operator

#: ITU T.81 Annex K, Table K.1 (luminance) and K.2 (chrominance), row-major
LUMA_TABLE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
CHROMA_TABLE = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99) + (99,) * 32

#: JFIF RGB -> YCbCr (rows Y, Cb, Cr; +128 offset on Cb and Cr)
RGB_TO_YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


def quality_table(base: Sequence[int], quality: int) -> Tensor:
    """IJG scaling of an 8x8 quantisation table to ``quality`` in [1, 100]."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be an integer in [1, 100], got {quality}")
    q = int(quality)
    scale = 5000 / q if q < 50 else 200 - 2 * q
    t = torch.floor((torch.tensor(base, dtype=torch.float64) * scale + 50) / 100)
    return t.clamp(1, 255).view(8, 8)


def dct_matrix(n: int = 8) -> Tensor:
    """Orthonormal DCT-II matrix ``C[u, x] = a_u cos((2x + 1) u pi / 2n)``."""
    u = torch.arange(n, dtype=torch.float64)[:, None]
    x = torch.arange(n, dtype=torch.float64)[None]
    c = torch.cos((2 * x + 1) * u * math.pi / (2 * n)) * math.sqrt(2 / n)
    c[0] /= math.sqrt(2)
    return c


def _to_blocks(p: Tensor) -> Tensor:
    """(B, H, W) -> (B, H/8, W/8, 8, 8)."""
    B, H, W = p.shape
    return p.reshape(B, H // 8, 8, W // 8, 8).transpose(2, 3)


def _from_blocks(b: Tensor) -> Tensor:
    B, h, w = b.shape[:3]
    return b.transpose(2, 3).reshape(B, h * 8, w * 8)


class JPEG(Operator):
    """JPEG at quality ``quality`` (non-linear, non-differentiable, with ``h_dagger``).

    Args:
        quality: 1..100 (PiGDM evaluates 5, 10 and 20).
        in_shape: ``[3, H, W]`` (or ``[1, H, W]`` for greyscale, luminance only); sizes that
            are not multiples of the MCU (16 with subsampling, else 8) are edge-padded.
        subsampling: 4:2:0 chroma subsampling (libjpeg's default) or 4:4:4.
        output: ``"image"`` -- ``y`` is the decoded JPEG in [0, 1], image-shaped, and
            ``h_dagger`` is the identity (the decoder was already applied; convenient for
            display and for compositions with masks); ``"coefficients"`` -- ``y`` holds the
            dequantised DCT coefficients ``q Q / 255`` (luminance unshuffled to 4 channels with
            subsampling, then Cb, Cr) and ``h_dagger`` is the decoder.
    """

    linear = False
    differentiable = False

    def __init__(self, quality: int = 10, in_shape: Optional[Sequence[int]] = None,
                 subsampling: bool = True, output: str = "image"):
        super().__init__(in_shape)
        if output not in ("image", "coefficients"):
            raise ValueError(f"JPEG output must be 'image' or 'coefficients', got {output!r}")
        if self.in_shape is not None and self.in_shape[0] not in (1, 3):
            raise ValueError(f"JPEG takes 1 or 3 channels, got in_shape {self.in_shape}")
        self.quality, self.subsampling, self.output = int(quality), bool(subsampling), output
        self.register_buffer("q_luma", quality_table(LUMA_TABLE, quality))
        self.register_buffer("q_chroma", quality_table(CHROMA_TABLE, quality))
        self.register_buffer("dct", dct_matrix(8))
        self.register_buffer("rgb2ycc", torch.tensor(RGB_TO_YCBCR, dtype=torch.float64))

    # --- helpers -------------------------------------------------------------
    @property
    def mcu(self) -> int:
        return 16 if self.subsampling else 8

    def _padded(self, H: int, W: int) -> tuple[int, int]:
        m = self.mcu
        return -(-H // m) * m, -(-W // m) * m

    def _code(self, plane: Tensor, table: Tensor) -> Tensor:
        """Quantised, dequantised block DCT of a level-shifted plane (B, h, w)."""
        c = self.dct
        coef = c @ _to_blocks(plane - 128) @ c.T
        return _from_blocks(torch.round(coef / table) * table)

    def _decode_plane(self, coef: Tensor) -> Tensor:
        c = self.dct
        return _from_blocks(c.T @ _to_blocks(coef) @ c) + 128

    # --- encoder / decoder ------------------------------------------------------
    def encode(self, x: Tensor) -> list[Tensor]:
        """Dequantised coefficient planes ``[Y, Cb, Cr]`` (or ``[Y]``), float64, 0..255 units."""
        self.check_input(x)
        if x.shape[1] not in (1, 3):
            raise ValueError(f"JPEG takes 1 or 3 channels, got {x.shape[1]}")
        H, W = x.shape[-2:]
        Hp, Wp = self._padded(H, W)
        v = torch.round(x.detach().double().clamp(0, 1) * 255)
        v = F.pad(v, (0, Wp - W, 0, Hp - H), mode="replicate")
        if v.shape[1] == 1:
            return [self._code(v[:, 0], self.q_luma)]
        ycc = torch.einsum("ij,bjhw->bihw", self.rgb2ycc, v)
        ycc[:, 1:] += 128
        chroma = F.avg_pool2d(ycc[:, 1:], 2) if self.subsampling else ycc[:, 1:]
        return [self._code(ycc[:, 0], self.q_luma)] + [self._code(chroma[:, i], self.q_chroma)
                                                        for i in range(2)]

    def decode(self, planes: Sequence[Tensor], size: tuple[int, int], dtype=torch.float32) -> Tensor:
        """Image in [0, 1] of spatial ``size`` from coefficient planes (inverse of :meth:`encode`)."""
        y = self._decode_plane(planes[0])
        if len(planes) == 1:
            img = y[:, None]
        else:
            cc = torch.stack([self._decode_plane(p) for p in planes[1:]], 1) - 128
            if self.subsampling:
                cc = F.interpolate(cc, scale_factor=2, mode="nearest")
            ycc = torch.cat([y[:, None], cc], 1)
            img = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(self.rgb2ycc), ycc)
        img = torch.round(img).clamp(0, 255) / 255
        return img[..., : size[0], : size[1]].to(dtype)

    # --- packing of the coefficient representation -----------------------------
    def _pack(self, planes: list[Tensor]) -> Tensor:
        y = planes[0][:, None] / 255
        if len(planes) == 1:
            return y
        if self.subsampling:
            y = F.pixel_unshuffle(y, 2)
        return torch.cat([y, torch.stack(planes[1:], 1) / 255], 1)

    def _unpack(self, y: Tensor) -> list[Tensor]:
        y = y.double() * 255
        if y.shape[1] == 1:
            return [y[:, 0]]
        lum = F.pixel_shuffle(y[:, :4], 2)[:, 0] if self.subsampling else y[:, 0]
        return [lum, y[:, -2], y[:, -1]]

    # --- operator interface -------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        planes = self.encode(x)
        if self.output == "image":
            return self.decode(planes, tuple(x.shape[-2:]), x.dtype)
        return self._pack(planes).to(x.dtype)

    def h_dagger(self, y: Tensor) -> Tensor:
        """The JPEG decoder (identity in ``output="image"`` mode, where ``y`` is already decoded)."""
        if self.output == "image":
            return y
        if self.in_shape is None:
            raise ValueError("JPEG(output='coefficients') needs in_shape to decode")
        return self.decode(self._unpack(y), tuple(self.in_shape[-2:]), y.dtype)

    def extra_repr(self):
        return (f"quality={self.quality}, in_shape={self.in_shape}, subsampling={self.subsampling}, "
                f"output={self.output!r}")
