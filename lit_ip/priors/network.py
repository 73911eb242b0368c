"""A neural denoiser as a prior.

The network works in its *native* data range ``[lo, hi]`` on its native path
``x_n = a x0_n + b eps``. With ``s = hi - lo`` and ``x0_n = lo + s x0`` the prior's
[0, 1]-unit path is ``(a, b / s)`` and

    x_native = s * x_t + a * lo,
    x0_hat   = (x0_native_hat - lo) / s,

where ``x0_native_hat = x0_from(prediction, network(x_native, t * time_scale), x_native, a, b, a', b')``
(:mod:`lit_ip.priors.parameterization`, native coefficients). With ``clip_x0`` the estimate is
clamped to [0, 1]: the exact ``E[x0 | x_t]`` of data in [0, 1] lies in [0, 1], so the clamp only
removes network error (the ``clip_denoised`` / ``clip_sample`` default of DDPM samplers).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from . import parameterization as P
from .base import Prior
from .paths import NoisePath


class NetworkPrior(Prior):
    """Prior given by a network ``network(x_native, t_in) -> prediction`` (same shape as ``x_native``).

    Args:
        network: the module; called with ``t_in = t * time_scale`` as a (B,) float tensor.
        path: the noise path in the network's native units.
        prediction: ``"eps"``, ``"x0"``, ``"v"`` or ``"velocity"``.
        image_shape: shape of one image ``(C, H, W)``.
        data_range: native data range ``(lo, hi)``, e.g. ``(-1, 1)`` or ``(0, 1)``.
        time_scale: factor from path time to network time (e.g. 999 for flows trained on ``999 t``).
        data_mean, data_var: [0, 1]-unit data statistics; default ``0.5`` and ``1 / (hi - lo)^2``
            (unit variance in native units, the paper convention; 0.25 for [-1, 1] networks).
        clip_x0: clamp ``x0_hat`` to [0, 1] (off by default: the raw network estimate).
    """

    def __init__(self, network: nn.Module, path: NoisePath, prediction: str = "eps",
                 image_shape: Sequence[int] = (3, 32, 32), data_range: Sequence[float] = (-1.0, 1.0),
                 time_scale: float = 1.0, data_mean: Optional[float] = None,
                 data_var: Optional[float] = None, clip_x0: bool = False):
        if prediction not in P.PREDICTIONS:
            raise ValueError(f"unknown prediction type {prediction!r}; known: {P.PREDICTIONS}")
        lo, hi = (float(v) for v in data_range)
        if not hi > lo:
            raise ValueError(f"data_range must be (lo, hi) with hi > lo, got {tuple(data_range)}")
        span = hi - lo
        super().__init__(path.scaled(1.0 / span), image_shape,
                         data_mean=0.5 if data_mean is None else data_mean,
                         data_var=1.0 / span ** 2 if data_var is None else data_var)
        self.network = network
        self.native_path = path
        self.prediction = prediction
        self.data_range = (lo, hi)
        self.time_scale = float(time_scale)
        self.clip_x0 = bool(clip_x0)

    def network_output(self, x_native: Tensor, t) -> Tensor:
        """The raw network prediction at native input ``x_native`` and path time ``t``."""
        t_in = torch.full((x_native.shape[0],), float(t) * self.time_scale,
                          dtype=x_native.dtype, device=x_native.device)
        out = self.network(x_native, t_in)
        if out.shape != x_native.shape:
            raise ValueError(f"network output has shape {tuple(out.shape)}, expected {tuple(x_native.shape)} "
                             "(a learned-sigma network must be wrapped to return its first C channels)")
        return out

    def denoise(self, x_t: Tensor, t) -> Tensor:
        self.check_images(x_t, "x_t")
        lo, hi = self.data_range
        a, b = (c.to(x_t) for c in self.native_path.coefficients(torch.as_tensor(t)))
        da = db = None
        if self.prediction == "velocity":
            da, db = (c.to(x_t) for c in self.native_path.derivatives(torch.as_tensor(t)))
        x_native = (hi - lo) * x_t + a * lo
        out = self.network_output(x_native, t)
        x0_native = P.x0_from(self.prediction, out, x_native, a, b, da, db)
        x0 = (x0_native - lo) / (hi - lo)
        return x0.clamp(0, 1) if self.clip_x0 else x0

    def extra_repr(self) -> str:
        return (f"prediction={self.prediction!r}, path={self.native_path!r}, data_range={self.data_range}, "
                f"image_shape={self.image_shape}, time_scale={self.time_scale}, clip_x0={self.clip_x0}")
