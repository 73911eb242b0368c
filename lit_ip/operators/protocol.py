"""Blur operators of the published DPS protocol (Chung et al. 2023), FFHQ / ImageNet 256.

* Super-resolution x4 with MATLAB ``imresize`` semantics (antialiased Keys bicubic, symmetric
  boundary) is :class:`lit_ip.operators.resize.BicubicSR` (exactly the DPS ``Resizer`` matrix).
* Gaussian blur: 61x61 kernel, std 3.0, reflection padding. The DPS kernel is
  ``scipy.ndimage.gaussian_filter`` of a centred delta, i.e. the separable Gaussian truncated
  at ``truncate * std`` (= 12 pixels) and normalised: :class:`DPSGaussianBlur` (exact SVD).
* Motion blur: 61x61 kernels from a seeded random-trajectory generator, intensity 0.5,
  reflection padding; one kernel per sample index (:class:`MotionBlur` ``.bind``), the same
  kernel for the measurement and the guidance (DPS's non-linear blur drew a new one per call).
* Box (128x128) and random (70% / 92%) inpainting: :mod:`lit_ip.operators.inpainting`.

All blurs are correlations ``y = k * pad(x)`` with same-size output, as ``torch`` convolutions.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..rng import SampleRNG
from .base import LinearOperator
from .blur import SeparableBlur
from .linalg import expect_shape
from .separable import taps_matrix


def truncated_gaussian(kernel_size: int = 61, std: float = 3.0, truncate: float = 4.0) -> Tensor:
    """1-D kernel of length ``kernel_size``: ``exp(-t^2 / (2 std^2))`` for ``|t| <= round(truncate std)``,
    zero beyond, normalised to sum 1 (``scipy.ndimage.gaussian_filter`` of a delta)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    if not std > 0:
        raise ValueError(f"std must be > 0, got {std}")
    radius = int(truncate * std + 0.5)
    t = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
    k = torch.exp(-t ** 2 / (2 * std ** 2)) * (t.abs() <= radius)
    return k / k.sum()


class DPSGaussianBlur(SeparableBlur):
    """The DPS Gaussian blur: separable truncated Gaussian (:func:`truncated_gaussian`),
    reflection padding (``torch.nn.ReflectionPad2d``), same-size output; exact SVD.

    Args:
        in_shape: ``[C, H, W]`` (H, W larger than ``kernel_size // 2`` for reflection).
        kernel_size: 61 in the protocol (use a smaller one on small test images).
        std: 3.0 in the protocol.
        truncate: scipy's default 4.0.
        boundary: ``reflect`` in the protocol.
    """

    def __init__(self, in_shape: Sequence[int], kernel_size: int = 61, std: float = 3.0,
                 truncate: float = 4.0, boundary: str = "reflect"):
        super().__init__(truncated_gaussian(kernel_size, std, truncate), in_shape, boundary)
        self.std, self.truncate = float(std), float(truncate)

    def extra_repr(self):
        return (f"kernel_size={self.kernel.numel()}, std={self.std}, truncate={self.truncate}, "
                f"in_shape={self.in_shape}, boundary={self.boundary}")


# --- motion blur -----------------------------------------------------------------------------

def motion_kernel(size: int = 61, intensity: float = 0.5, generator: Optional[torch.Generator] = None,
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """A random camera-shake kernel ``(size, size)``, non-negative, summing to 1.

    A unit-speed trajectory of length ``L = (size - 1) (0.3 + 0.45 u)`` (``u ~ U(0, 1)``) turns
    by ``dtheta_k ~ N(drift, (intensity * 0.35)^2)`` per pixel of path (``drift ~
    N(0, (0.1 intensity)^2)``: a slowly bending path), with, for each pixel of path, a sudden
    jerk of angle ``U(-pi, pi) * intensity`` with probability ``0.02 * intensity``. Intensity 0
    gives a straight line. The path is centred on its mean, shrunk to fit inside the kernel
    and splatted bilinearly at constant speed (time spent = kernel mass).
    """
    if size < 3:
        raise ValueError(f"motion kernel size must be >= 3, got {size}")
    if not 0 <= intensity <= 1:
        raise ValueError(f"motion blur intensity must be in [0, 1], got {intensity}")
    g = generator

    def unif(n=1):
        return torch.rand(n, generator=g, dtype=torch.float64)

    def gauss(n=1):
        return torch.randn(n, generator=g, dtype=torch.float64)

    length = (size - 1) * (0.3 + 0.45 * float(unif()))
    steps = max(2, int(math.ceil(length)) * 4)               # 4 points per pixel of path
    ds = length / steps
    drift = 0.1 * intensity * float(gauss())
    turn = (drift + 0.35 * intensity * gauss(steps)) * math.sqrt(ds)
    jerk = (unif(steps) < 0.02 * intensity * ds) * (unif(steps) * 2 - 1) * math.pi * intensity
    theta = 2 * math.pi * float(unif()) + torch.cumsum(turn + jerk, 0)
    pts = torch.cumsum(torch.stack([torch.cos(theta), torch.sin(theta)], 1) * ds, 0)
    pts = pts - pts.mean(0)
    half = (size - 1) / 2 - 1.0                               # keep one pixel of margin
    extent = float(pts.abs().max())
    if extent > half:
        pts = pts * (half / extent)
    pts = pts + (size - 1) / 2
    k = torch.zeros(size * size, dtype=torch.float64)
    i0 = pts.floor()
    f = pts - i0
    i0 = i0.long()
    for dx in (0, 1):
        for dy in (0, 1):
            w = (f[:, 0] if dx else 1 - f[:, 0]) * (f[:, 1] if dy else 1 - f[:, 1])
            k.index_add_(0, (i0[:, 1] + dy) * size + (i0[:, 0] + dx), w)
    k = k.view(size, size)
    return (k / k.sum()).to(dtype)


def _pad_matrix(n: int, pad: int, boundary: str) -> Tensor:
    """``(n + 2 pad, n)`` matrix of padding a length-``n`` signal by ``pad`` on both sides."""
    return taps_matrix([[(i - pad, 1.0)] for i in range(n + 2 * pad)], n, boundary)


class KernelBlur(LinearOperator):
    """``y_b = k_b * pad(x_b)`` (correlation, same-size output) with one kernel per batch row.

    The padding is the linear map ``P_h X P_w^T`` (:func:`_pad_matrix`), so the adjoint
    ``P_h^T (k_b *^T y_b) P_w`` (transposed convolution) is exact for every boundary.
    ``pinv`` is the base class's conjugate-gradient minimum-norm solution.

    Args:
        kernels: ``(K, K)`` shared, or ``(B, K, K)`` per sample (odd ``K``).
        in_shape: ``[C, H, W]``.
        boundary: ``reflect`` (DPS), ``symmetric``, ``circular`` or ``zero``.
    """

    def __init__(self, kernels: Tensor, in_shape: Sequence[int], boundary: str = "reflect"):
        if in_shape is None or len(in_shape) != 3:
            raise ValueError(f"KernelBlur needs in_shape = [C, H, W], got {in_shape}")
        super().__init__(in_shape)
        k = torch.as_tensor(kernels, dtype=torch.get_default_dtype())
        k = k[None] if k.dim() == 2 else k
        if k.dim() != 3 or k.shape[-1] != k.shape[-2] or k.shape[-1] % 2 == 0:
            raise ValueError(f"kernels must be (K, K) or (B, K, K) with odd K, got {tuple(k.shape)}")
        C, H, W = self.in_shape
        p = k.shape[-1] // 2
        if boundary == "reflect" and p >= min(H, W):
            raise ValueError(f"a {k.shape[-1]}x{k.shape[-1]} kernel with reflection padding needs images "
                             f"larger than {p} pixels, got {(H, W)}")
        self.boundary, self.pad = boundary, p
        self.register_buffer("kernels", k)
        self.register_buffer("Ph", _pad_matrix(H, p, boundary).to(k.dtype))
        self.register_buffer("Pw", _pad_matrix(W, p, boundary).to(k.dtype))

    def _weight(self, batch: int, like: Tensor) -> Tensor:
        b = self.kernels.shape[0]
        if b not in (1, batch):
            raise ValueError(f"KernelBlur holds {b} per-sample kernels but got a batch of {batch}; "
                             f"bind the family to this batch's indices")
        C = self.in_shape[0]
        k = self.kernels.to(like).expand(batch, -1, -1)
        return k.repeat_interleave(C, 0)[:, None]             # (B*C, 1, K, K)

    def forward(self, x: Tensor) -> Tensor:
        expect_shape(x, self.in_shape, "KernelBlur", "x")
        B, C, H, W = x.shape
        xp = torch.einsum("ij,bcjk,lk->bcil", self.Ph.to(x), x, self.Pw.to(x))
        y = F.conv2d(xp.reshape(1, B * C, *xp.shape[-2:]), self._weight(B, x), groups=B * C)
        return y.reshape(B, C, H, W)

    def adjoint(self, y: Tensor) -> Tensor:
        expect_shape(y, self.in_shape, "KernelBlur", "y")
        B, C, H, W = y.shape
        z = F.conv_transpose2d(y.reshape(1, B * C, H, W), self._weight(B, y), groups=B * C)
        z = z.reshape(B, C, *z.shape[-2:])
        return torch.einsum("ji,bcjk,kl->bcil", self.Ph.to(y), z, self.Pw.to(y))

    def output_shape(self, in_shape):
        return tuple(in_shape)  # same-size output; a dry run on one row would not fit B kernels

    def extra_repr(self):
        return f"kernels={tuple(self.kernels.shape)}, in_shape={self.in_shape}, boundary={self.boundary}"


class MotionBlur(LinearOperator):
    """Family of motion blurs: ``bind(indices, seed)`` draws one :func:`motion_kernel` per sample
    index from ``SampleRNG.for_indices(indices, seed, stream="operator")`` and returns a :class:`KernelBlur`.

    Args:
        in_shape: ``[C, H, W]``.
        kernel_size: 61 in the DPS protocol.
        intensity: 0.5 in the DPS protocol.
        boundary: ``reflect`` (DPS).
    """

    def __init__(self, in_shape: Sequence[int], kernel_size: int = 61, intensity: float = 0.5,
                 boundary: str = "reflect"):
        if in_shape is None or len(in_shape) != 3:
            raise ValueError(f"MotionBlur needs in_shape = [C, H, W], got {in_shape}")
        super().__init__(in_shape)
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
        if not 0 <= float(intensity) <= 1:
            raise ValueError(f"intensity must be in [0, 1], got {intensity}")
        self.kernel_size, self.intensity, self.boundary = int(kernel_size), float(intensity), boundary

    def kernels_for(self, indices: Sequence[int], seed: int = 0) -> Tensor:
        """``(B, K, K)`` kernels of the given sample indices."""
        rng = SampleRNG.for_indices(indices, seed, stream="operator")
        return torch.stack([motion_kernel(self.kernel_size, self.intensity, g) for g in rng.generators])

    def bind(self, indices: Sequence[int], seed: int = 0) -> KernelBlur:
        return KernelBlur(self.kernels_for(indices, seed), self.in_shape, self.boundary)

    def output_shape(self, in_shape):
        return tuple(in_shape)

    def _unbound(self, *args, **kwargs):
        raise RuntimeError("MotionBlur draws one kernel per sample: call .bind(indices, seed) to get "
                           "the operator for a batch before using it")

    forward = adjoint = pinv = h_dagger = _unbound

    def extra_repr(self):
        return (f"in_shape={self.in_shape}, kernel_size={self.kernel_size}, intensity={self.intensity}, "
                f"boundary={self.boundary}")
