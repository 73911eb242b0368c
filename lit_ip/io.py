"""Safe, atomic file output.

Every file is written to a temporary file in the destination folder and then moved
into place with :func:`os.replace` (atomic on POSIX), so a reader or an interrupted
run never sees a half-written file. The data are flushed to disk (``fsync``) before the
rename and the folder after it, so a power loss leaves the old file or the new one, never
an empty one. Files get the permissions the umask allows (``0666 & ~umask``), like any
file a program creates. Temporary files carry the tag :data:`TMP_TAG`
(``.NAME.litip-XXXX.tmp``); :func:`remove_own_temp_files` removes only those. Output names
built from data-set keys go through :func:`sanitize_key` and :func:`safe_path`, so a key
such as ``"../../etc/x"`` can never write outside the output folder.
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
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

PathLike = Union[str, os.PathLike]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_HASHED = re.compile(r"-[0-9a-f]{8}$")  # the suffix sanitize_key appends
_MAX_KEY = 120
#: marks the temporary files this module creates (and may therefore remove)
TMP_TAG = ".litip-"


def sanitize_key(key: Any) -> str:
    """A file-name-safe version of ``key`` (one path component, never ``.``/``..``).

    Safe keys (letters, digits, ``._-``, not starting with a dot) are kept as they are.
    Anything else is rewritten (unsafe runs become ``_``) and suffixed with ``-`` and the
    first 8 hex digits of the SHA-1 of the original key. A safe key that already ends like
    such a suffix (``a_b-3ec69c85``) is suffixed too, so a kept key never equals a rewritten
    one; two rewritten keys share a name only if prefix and 32-bit hash both collide, which
    the prediction writer detects (it stores each name's key and refuses a second one).
    """
    key = str(key)
    if (key and not key.startswith(".") and not _UNSAFE.search(key) and len(key) <= _MAX_KEY
            and not _HASHED.search(key)):
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


def file_mode() -> int:
    """``0o666`` minus the process umask (what ``open()`` would give a new file)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not sync folders
    finally:
        os.close(fd)


def _atomic_write(path: PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    path = Path(path)
    if path.is_symlink():
        raise ValueError(f"refusing to write {path}: it is a symbolic link")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:80]}{TMP_TAG}", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())  # mkstemp makes 0600 files; honour the umask instead
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def remove_own_temp_files(folder: PathLike) -> list[Path]:
    """Remove the temporary files of :func:`_atomic_write` (tagged :data:`TMP_TAG`) directly
    in ``folder`` (not below it) left by an interrupted run; other files are never touched."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return []
    removed = []
    for p in folder.glob(f".*{TMP_TAG}*.tmp"):
        if p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def damage(path: PathLike) -> Optional[str]:
    """Why the output file ``path`` is unusable (empty, unreadable JSON, undecodable PNG), or None."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return "empty file"
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".png":
            from PIL import Image

            with Image.open(path) as im:
                im.verify()
    except Exception as e:  # noqa: BLE001 - any failure to read means damaged
        return f"{type(e).__name__}: {e}"
    return None


def read_json(path: PathLike) -> Any:
    """``json.load`` of ``path``, failing with a message naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is damaged (not valid JSON: {e}); delete it and rerun") from e


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
