"""Safe, atomic file output.

Every file is written to a temporary file in the destination folder and then moved
into place with :func:`os.replace` (atomic on POSIX), so a reader or an interrupted
run never sees a half-written file. Output names built from data-set keys go through
:func:`sanitize_key` and :func:`safe_path`, so a key such as ``"../../etc/x"`` can
never write outside the output folder.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np
import torch
from torch import Tensor

PathLike = Union[str, os.PathLike]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_KEY = 120


def sanitize_key(key: Any) -> str:
    """A file-name-safe version of ``key`` (one path component, never ``.``/``..``).

    Safe keys (letters, digits, ``._-``, not starting with a dot) are kept as they are.
    Anything else is rewritten (unsafe runs become ``_``) and suffixed with a short hash
    of the original key, so two different keys never map to the same name.
    """
    key = str(key)
    if key and not key.startswith(".") and not _UNSAFE.search(key) and len(key) <= _MAX_KEY:
        return key
    digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    clean = _UNSAFE.sub("_", key).lstrip(".")[: _MAX_KEY - 9] or "key"
    return f"{clean}-{digest}"


def safe_path(root: PathLike, *parts: str) -> Path:
    """``root / part1 / part2 ...`` where every part must be one plain path component
    (no separators, not ``.``/``..``; pass keys through :func:`sanitize_key` first) and
    the result must lie inside ``root``."""
    base = Path(root).resolve()
    for part in parts:
        part = str(part)
        if part in ("", ".", "..") or "/" in part or "\\" in part or os.sep in part or "\0" in part:
            raise ValueError(f"unsafe path component {part!r}: sanitise keys with sanitize_key()")
    path = base.joinpath(*parts).resolve()
    if base not in path.parents:
        raise ValueError(f"refusing to write {path}: outside the output folder {base}")
    return path


def _atomic_write(path: PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_bytes(path: PathLike, data: bytes) -> Path:
    return _atomic_write(path, lambda f: f.write(data))


def write_text(path: PathLike, text: str) -> Path:
    return _atomic_write(path, lambda f: f.write(text), mode="w")


def write_json(path: PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def to_uint8(image: Tensor) -> np.ndarray:
    """(C, H, W) float image in [0, 1] -> (H, W) or (H, W, 3) uint8 (clipped to [0, 1]; NaN -> 0)."""
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected an image of shape (1 or 3, H, W), got {tuple(image.shape)}")
    arr = (torch.nan_to_num(image.detach().float().cpu(), nan=0.0).clamp(0, 1) * 255).round().to(torch.uint8)
    arr = arr.permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def write_png(path: PathLike, image: Tensor) -> Path:
    """Save a (C, H, W) image in [0, 1] as an 8-bit PNG, atomically."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return write_bytes(path, buf.getvalue())


def read_png(path: PathLike) -> Tensor:
    """An 8-bit PNG as a (C, H, W) float tensor in [0, 1]."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("L" if im.mode in ("L", "I", "I;16", "1") else "RGB"))
    arr = arr[..., None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255


def write_csv(path: PathLike, rows: Sequence[dict], columns: Sequence[str]) -> Path:
    def write(f):
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)

    return _atomic_write(path, write, mode="w")


def markdown_table(rows: Sequence[dict], columns: Sequence[str], floatfmt: str = ".2f") -> str:
    """A GitHub-flavoured markdown table of ``rows`` (floats formatted with ``floatfmt``)."""
    def cell(v):
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"
