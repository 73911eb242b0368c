"""A folder of image files as a data set (recursive, sorted, stable keys).

Hidden files and folders (``.ipynb_checkpoints/``, macOS ``._x.png``, ...) are skipped;
8- and 16-bit, grey, RGB and RGBA files are decoded by :mod:`lit_ip.data.decode` (alpha
composited on ``background``, white by default). An unreadable file is an error naming it,
or, with ``on_error="skip"``, left out at start-up (every file is checked then) and listed
in the run's ``summary.json`` (``skipped_samples``); the other files keep their indices.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .bundled import _resize, _to_gray
from .decode import is_hidden, pil_to_array

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
        on_error: ``"raise"`` (an unreadable file stops the run, named) or ``"skip"`` (check
            every file at start-up, leave out and list the unreadable ones).
        background: grey level in [0, 1] that transparent pixels are composited on
            (``None``: refuse images with transparency).
    """

    def __init__(self, root: str, size: Optional[Union[int, Sequence[int]]] = None,
                 channels: int = 3, extensions: Sequence[str] = EXTENSIONS, on_error: str = "raise",
                 background: Optional[float] = 1.0):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {str(self.root)!r} does not exist or is not a folder")
        if int(channels) not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.channels, self.background = int(channels), background
        self.size = size if size is None or isinstance(size, int) else tuple(int(s) for s in size)
        exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
        self.files = sorted((p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in exts
                             and not is_hidden(p.relative_to(self.root))),
                            key=lambda p: p.relative_to(self.root).as_posix())
        if not self.files:
            raise FileNotFoundError(f"no images with extensions {sorted(exts)} under {str(self.root)!r}")
        self.keys = [p.relative_to(self.root).with_suffix("").as_posix() for p in self.files]
        if len(set(self.keys)) != len(self.keys):
            dup = sorted({k for k in self.keys if self.keys.count(k) > 1})
            raise ValueError(f"files differing only by extension give the same key: {dup[:5]}")
        self.skipped: list[dict] = []  # {"shard": file, "key", "error"}, as the shard reader lists them
        self.positions = list(range(len(self.files)))
        if on_error == "skip":
            self.positions = [i for i in self.positions if self._readable(i)]
            if not self.positions:
                raise FileNotFoundError(f"no readable images under {str(self.root)!r}: {self.skipped[:3]}")

    def _readable(self, i: int) -> bool:
        try:
            self.read(i)
            return True
        except ValueError as e:
            self.skipped.append({"shard": str(self.files[i]), "key": self.keys[i], "error": str(e)})
            return False

    def __len__(self) -> int:
        return len(self.positions)

    def read(self, i: int) -> np.ndarray:
        """File ``i`` (of :attr:`files`) as float (H, W) or (H, W, 3) in [0, 1]."""
        from PIL import Image

        try:
            with Image.open(self.files[i]) as im:
                return pil_to_array(im, self.background)
        except Exception as e:  # PIL raises several types for unreadable files
            raise ValueError(f"cannot read image {str(self.files[i])!r}: {type(e).__name__}: {e}") from e

    def load(self, i: int) -> torch.Tensor:
        arr = self.read(i)
        x = torch.from_numpy(np.ascontiguousarray(arr))
        x = x[None] if x.dim() == 2 else x.permute(2, 0, 1).contiguous()
        if self.channels == 1 and x.shape[0] == 3:
            x = _to_gray(x)
        elif self.channels == 3 and x.shape[0] == 1:
            x = x.expand(3, -1, -1).contiguous()
        if isinstance(self.size, int):
            x = _resize(center_square(x), self.size)
        elif self.size is not None:
            x = _resize(x, self.size)
        return x.clamp(0, 1)

    def __getitem__(self, i: int) -> dict:
        j = self.positions[i]  # == i unless unreadable files were skipped
        return {"image": self.load(j), "key": self.keys[j], "index": int(j)}
