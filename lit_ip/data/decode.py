"""Decode image files to float arrays in [0, 1], whatever their bit depth and alpha.

* 8-bit (``L``, ``P``, ``RGB``, ``CMYK``, ...) are divided by 255, 16-bit (``I;16*``, and
  ``I`` as PIL opens 16-bit PNGs) by 65535, ``F`` is taken as is (clipped to [0, 1]); 1-bit
  images are 0 / 1.
* An alpha channel (``LA``, ``RGBA``, ``PA``, palette transparency) is composited on a
  uniform ``background`` (default 1.0, white), ``out = alpha * colour + (1 - alpha) *
  background``, so colours hidden under alpha 0 never show; ``background=None`` refuses
  images with transparency instead.
* Hidden files and folders (a path component starting with ``.``: ``.ipynb_checkpoints/``,
  macOS ``._name`` files, ...) and ``__MACOSX/`` are not images: :func:`is_hidden`.
"""
from __future__ import annotations

from pathlib import PurePath
from typing import Optional

import numpy as np

SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def is_hidden(rel: PurePath) -> bool:
    """``rel`` (relative to the scanned folder) is, or lies in, a hidden or metadata folder."""
    return any(part.startswith(".") or part == "__MACOSX" for part in PurePath(rel).parts)


def pil_to_array(im, background: Optional[float] = 1.0) -> np.ndarray:
    """An opened PIL image -> float32 (H, W) (grey) or (H, W, 3) in [0, 1]."""
    im.load()
    if im.mode in SIXTEEN_BIT:
        arr = np.asarray(im, dtype=np.float64)
        return np.clip(arr / 65535.0, 0, 1).astype(np.float32)
    if im.mode == "F":
        return np.clip(np.asarray(im, dtype=np.float32), 0, 1)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in ("L", "1") and "transparency" in im.info:
        im = im.convert("LA")
    elif im.mode == "RGB" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("LA", "RGBA", "PA", "La", "RGBa"):
        im = im.convert("LA" if im.mode in ("LA", "La") else "RGBA")
        arr = np.asarray(im, dtype=np.float32) / 255.0
        colour, alpha = arr[..., :-1], arr[..., -1:]
        if background is None:
            if (alpha < 1).any():
                raise ValueError(f"image has transparent pixels (mode {im.mode}); set a background "
                                 f"to composite them on")
            out = colour
        else:
            out = alpha * colour + (1 - alpha) * float(background)
        return out[..., 0] if out.shape[-1] == 1 else out
    if im.mode == "1":
        return np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    im = im.convert("L" if im.mode == "L" else "RGB")
    return np.asarray(im, dtype=np.float32) / 255.0
