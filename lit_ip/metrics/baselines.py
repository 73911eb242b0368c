"""Trivial estimates: what a restoration must beat besides the pseudo-inverse.

The pseudo-inverse is a poor yardstick on ill-conditioned problems (on a 9x9 Gaussian blur it
amplifies noise into a checkerboard, while the blurred measurement itself is a fair image).
The *trivial estimate* of a task is the measurement read as an image, whenever that makes sense:

* the operator's output has the shape of its input (denoising, deblurring, inpainting with
  zeros in the holes, ...): ``x_triv = y``;
* a per-pixel channel weighting to one channel (colorization, ``y = w^T x_p``): the grey image
  consistent with ``y``, ``x_triv = (y / sum_c w_c) 1_C`` (the luminance repeated over RGB);
* otherwise (super-resolution, compressed sensing, ...) there is none and the pseudo-inverse
  is the only baseline.

:func:`best_baselines` picks, per task, the baseline with the higher mean PSNR.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ..operators.base import Operator

#: the method name of trivial-estimate rows in metrics tables
TRIVIAL = "trivial"


def _channel_weights(operator: Operator) -> Optional[Tensor]:
    """The weights ``w`` of a colorization-like operator (``y = w^T x`` per pixel), else None."""
    from ..operators.colorization import Colorization

    return operator.w.detach().flatten() if isinstance(operator, Colorization) else None


def trivial_kind(operator: Operator, in_shape: Sequence[int],
                 y_shape: Optional[Sequence[int]] = None) -> Optional[str]:
    """``"measurement"``, ``"luminance"`` or None: which trivial estimate the task has
    (``y_shape``: one measurement's shape, default ``operator.output_shape(in_shape)``)."""
    in_shape = tuple(in_shape)
    out = tuple(operator.output_shape(in_shape) if y_shape is None else y_shape)
    if out == in_shape:
        return "measurement"
    if _channel_weights(operator) is not None and len(in_shape) == 3 and out == (1, *in_shape[1:]):
        return "luminance"
    return None


def trivial_estimate(operator: Operator, y: Tensor, in_shape: Optional[Sequence[int]] = None) -> Optional[Tensor]:
    """The trivial estimate of ``x`` from ``y`` (B, ...) for ``operator``, or None (see module doc).

    ``in_shape`` defaults to ``operator.in_shape``.
    """
    shape = tuple(operator.in_shape if in_shape is None else in_shape)
    kind = trivial_kind(operator, shape, y.shape[1:])
    if kind == "measurement":
        return y.reshape(y.shape[0], *shape)
    if kind == "luminance":
        w = _channel_weights(operator).to(y)
        return (y / w.sum()).expand(y.shape[0], shape[0], *shape[1:]).contiguous()
    return None


def best_baselines(summary: list[dict], names: dict[str, str]) -> dict[str, dict]:
    """Per task, the baseline with the highest mean PSNR among summary rows whose ``method``
    is a key of ``names`` (row label -> short name, e.g. ``{"pinv (baseline)": "pinv"}``):
    ``{task: {"method": short name, "psnr": ..., "ssim": ...}}``."""
    out: dict[str, dict] = {}
    for s in summary:
        if s["method"] not in names or not torch.isfinite(torch.tensor(float(s["psnr"]))):
            continue
        best = out.get(s["task"])
        if best is None or s["psnr"] > best["psnr"]:
            out[s["task"]] = {"method": names[s["method"]], "psnr": s["psnr"], "ssim": s["ssim"]}
    return out


__all__ = ["TRIVIAL", "trivial_kind", "trivial_estimate", "best_baselines"]
