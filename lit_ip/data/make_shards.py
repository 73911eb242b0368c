"""``lit-ip make-shards <folder> <out_dir> --per-shard N``: a folder of images -> webdataset tars.

Images are found recursively and taken in sorted order of their relative paths; sample
``i`` gets the key "relative path without extension" (dots replaced by ``_``, since
webdataset splits a file name at its first dot) and goes to shard ``i // N``. Each sample
stores the image bytes unchanged (``<key>.<ext>``), a ``<key>.json`` with its source path
and, with ``--measurements DIR``, a stored measurement ``<key>.y.npy`` taken from
``DIR/<relative path without extension>.npy``. Tars are written deterministically
(fixed mtime/owner) and atomically; ``manifest.json`` lists the shards and their sample
counts, from which :class:`lit_ip.data.shards.ShardSource` derives global indices.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Optional, Sequence

IMAGE_EXTS = ("png", "jpg", "jpeg", "bmp", "ppm", "pgm", "tif", "tiff", "webp")
MANIFEST = "manifest.json"


def find_images(folder: Path) -> list[Path]:
    """Image files under ``folder``, sorted; hidden files and folders are left out."""
    from .decode import is_hidden

    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in IMAGE_EXTS
             and not is_hidden(p.relative_to(folder))]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def sample_key(rel: Path) -> str:
    """Key of an image from its path relative to the folder (no extension, no dots)."""
    return rel.with_suffix("").as_posix().replace(".", "_")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.litip-{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def make_shards(folder, out_dir, per_shard: int = 1000, measurements: Optional[str] = None,
                prefix: str = "shard") -> dict:
    """Write the shards and the manifest; returns the manifest."""
    folder, out_dir = Path(folder), Path(out_dir)
    if per_shard < 1:
        raise ValueError(f"--per-shard must be >= 1, got {per_shard}")
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {str(folder)!r} does not exist")
    images = find_images(folder)
    if not images:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTS)}) found under {folder}")
    keys = [sample_key(p.relative_to(folder)) for p in images]
    seen: dict[str, Path] = {}
    for key, path in zip(keys, images):
        if key in seen:
            raise ValueError(f"{seen[key]} and {path} map to the same key {key!r}; rename one of them")
        seen[key] = path
    if measurements is not None:  # check every input before writing anything
        absent = [p for p in images if not (Path(measurements) / p.relative_to(folder).with_suffix(".npy")).is_file()]
        if absent:
            raise FileNotFoundError(f"no stored measurement under {measurements} for {len(absent)} images, "
                                    f"e.g. {absent[0].relative_to(folder).with_suffix('.npy')}")
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = []
    for s, start in enumerate(range(0, len(images), per_shard)):
        chunk = list(zip(keys, images))[start:start + per_shard]
        name = f"{prefix}-{s:06d}.tar"

        def write(f, chunk=chunk):
            # PAX: names of any length (a plain ustar header when the name fits, as before)
            with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for key, path in chunk:
                    rel = path.relative_to(folder)
                    _add(tar, f"{key}.{path.suffix.lower().lstrip('.')}", path.read_bytes())
                    _add(tar, f"{key}.json", json.dumps({"source": rel.as_posix()}).encode())
                    if measurements is not None:
                        y = Path(measurements) / rel.with_suffix(".npy")
                        if not y.is_file():
                            raise FileNotFoundError(f"no stored measurement {y} for image {rel}")
                        _add(tar, f"{key}.y.npy", y.read_bytes())

        _write_atomic(out_dir / name, write)
        shards.append({"name": name, "count": len(chunk), "first_key": chunk[0][0]})
    manifest = {"shards": shards, "total": len(images), "source": str(folder)}
    _write_atomic(out_dir / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    return manifest


def main(argv: Optional[Sequence[str]] = None) -> dict:
    ap = argparse.ArgumentParser(prog="lit-ip make-shards", description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="folder of images (searched recursively)")
    ap.add_argument("out_dir", help="where the .tar shards and manifest.json go")
    ap.add_argument("--per-shard", type=int, default=1000, help="samples per shard (default 1000)")
    ap.add_argument("--measurements", default=None, help="folder of stored measurements (.npy, same relative paths)")
    ap.add_argument("--prefix", default="shard", help="shard file name prefix")
    args = ap.parse_args(argv)
    manifest = make_shards(args.folder, args.out_dir, args.per_shard, args.measurements, args.prefix)
    print(f"wrote {manifest['total']} samples in {len(manifest['shards'])} shards to {args.out_dir}")
    return manifest
