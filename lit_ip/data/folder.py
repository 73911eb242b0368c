"""A folder of image files as a data set (recursive, sorted, stable keys)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .bundled import _resize, _to_gray

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def center_square(x: torch.Tensor) -> torch.Tensor:
    """The largest centred square of a (C, H, W) image."""
    h, w = x.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return x[:, top:top + s, left:left + s]


class ImageFolder(Dataset):
    """All images under ``root`` (recursively), sorted by relative path.

    Item ``i`` is ``{"image": (C, H, W) in [0, 1], "key": relative path without extension
    (``"sub/name"``), "index": i}``; the writer makes keys file-name safe.

    Args:
        root: folder to scan.
        size: ``None`` keeps each image's size (then use ``batch_size=1`` unless all match);
            an int centre-crops the largest square and resizes it to ``size`` x ``size``;
            ``(H, W)`` resizes to that shape.
        channels: 1 (grayscale, ITU-R 709 weights) or 3 (RGB; grayscale files are repeated).
        extensions: file suffixes to include (case-insensitive).
    """

    def __init__(self, root: str, size: Optional[Union[int, Sequence[int]]] = None,
                 channels: int = 3, extensions: Sequence[str] = EXTENSIONS):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {str(self.root)!r} does not exist or is not a folder")
        if int(channels) not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.channels = int(channels)
        self.size = size if size is None or isinstance(size, int) else tuple(int(s) for s in size)
        exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
        self.files = sorted((p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in exts),
                            key=lambda p: p.relative_to(self.root).as_posix())
        if not self.files:
            raise FileNotFoundError(f"no images with extensions {sorted(exts)} under {str(self.root)!r}")
        self.keys = [p.relative_to(self.root).with_suffix("").as_posix() for p in self.files]
        if len(set(self.keys)) != len(self.keys):
            dup = sorted({k for k in self.keys if self.keys.count(k) > 1})
            raise ValueError(f"files differing only by extension give the same key: {dup[:5]}")

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int) -> torch.Tensor:
        from PIL import Image

        try:
            with Image.open(self.files[i]) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        except Exception as e:  # PIL raises several types for unreadable files
            raise ValueError(f"cannot read image {str(self.files[i])!r}: {e}") from e
        x = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
        if self.channels == 1:
            x = _to_gray(x)
        if isinstance(self.size, int):
            x = _resize(center_square(x), self.size)
        elif self.size is not None:
            x = _resize(x, self.size)
        return x.clamp(0, 1)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.load(i), "key": self.keys[i], "index": int(i)}
