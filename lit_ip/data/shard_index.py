"""Counting the samples of webdataset tar shards and finding damage, reading headers only.

:func:`shard_counts` takes the counts from ``manifest.json`` (a shard it lists but the folder
lacks is an error; one it does not list is counted from its headers, with a warning);
:func:`scan_tar` counts samples and reports a tar that ends early -- ``tarfile`` reads a
header that does not parse as the end of the archive, so the bytes after the last readable
header are checked to be the zero blocks that end a tar; :func:`find_damage` locates the
sample a truncated tar cuts off.
"""
from __future__ import annotations

import json
import os
import tarfile
import warnings
from pathlib import Path
from typing import Optional, Sequence

from .make_shards import MANIFEST


class ShardError(RuntimeError):
    """A shard or one of its samples cannot be read."""


def scan_tar(shard: str) -> tuple[int, Optional[str]]:
    """``(samples, damage)`` of a tar, reading headers only: samples are distinct keys in a
    row; ``damage`` says why the archive ends early (None if it ends properly). ``tarfile``
    stops silently at a header that does not parse, so the bytes after the last readable
    header are checked to be the zero blocks that end a tar."""
    n, last = 0, None

    def count(info):
        nonlocal n, last
        key = _split_name(info.name)[0] if info.isreg() else None
        if key is not None and key != last:
            n, last = n + 1, key

    try:
        size = os.path.getsize(shard)
        with open(shard, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
            for info in tar:
                count(info)
                if info.isreg() and info.offset_data + info.size > size:
                    return n, f"truncated tar: sample {last!r} is cut off"
            end = tar.offset
            f.seek(end)
            rest = f.read()
        if rest.strip(b"\0"):
            return n, (f"damaged tar: the header at byte {end} (after sample {last!r}) does not parse, "
                       f"and {len(rest)} bytes follow it")
    except tarfile.ReadError:
        try:  # compressed: count as a stream (damage shows when it is read)
            n, last = 0, None
            with tarfile.open(shard, mode="r|*") as tar:
                for info in tar:
                    count(info)
        except (tarfile.TarError, OSError, EOFError) as e:
            return n, f"unreadable tar ({type(e).__name__}: {e})"
    except (tarfile.TarError, OSError, EOFError) as e:
        return n, f"unreadable tar ({type(e).__name__}: {e})"
    return n, None


def count_samples(shard: str) -> int:
    """Number of samples (distinct keys in a row) of a tar, reading headers only."""
    return scan_tar(shard)[0]


def find_damage(shard: str) -> tuple[Optional[str], Optional[str]]:
    """``(key cut off, last complete key)`` of a damaged tar, reading it member by member."""
    last, current = None, None
    try:
        with tarfile.open(shard, mode="r|*") as tar:
            for info in tar:
                key = _split_name(info.name)[0] if info.isreg() else None
                if key is None:
                    continue
                if key != current:
                    last, current = current, key
                tar.extractfile(info).read()
    except (tarfile.TarError, OSError, EOFError):
        return current, last
    return None, current


def _split_name(name: str):
    """webdataset's key/extension split: the key ends at the first dot of the base name."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    if not dot or not stem:
        return None, None
    return (f"{head}/{stem}" if head else stem), ext.lower()


def read_manifest(folder: Path) -> Optional[dict[str, int]]:
    """``{shard file name: sample count}`` of ``folder/manifest.json`` (None if there is none)."""
    manifest = Path(folder) / MANIFEST
    if not manifest.is_file():
        return None
    try:
        return {s["name"]: int(s["count"]) for s in json.loads(manifest.read_text())["shards"]}
    except (ValueError, KeyError, TypeError) as e:
        raise ShardError(f"{manifest} is damaged ({type(e).__name__}: {e}); rewrite it with "
                         f"lit-ip make-shards or remove it") from e


def shard_counts(shards: Sequence[str], whole_folder: bool = False,
                 damage: Optional[dict] = None) -> list[int]:
    """Sample counts from the manifest beside the shards, else by counting tar members
    (:func:`scan_tar`; damage found there goes into ``damage``: shard -> reason). A shard the
    manifest does not list is counted (with a warning); for ``whole_folder`` (the shards of a
    folder) a shard the manifest lists but the folder lacks is an error."""
    folder = Path(shards[0]).parent
    listed = (read_manifest(folder) if all(Path(s).parent == folder for s in shards) else None) or {}
    absent = sorted(set(listed) - {Path(s).name for s in shards}) if whole_folder else []
    if absent:
        raise ShardError(f"{folder / MANIFEST} lists shards that are missing from {folder}: "
                         f"{absent[:3]}{' ...' if len(absent) > 3 else ''}")
    unlisted = [s for s in shards if Path(s).name not in listed]
    if listed and unlisted:
        warnings.warn(f"shards {[Path(s).name for s in unlisted[:3]]} are not listed in {folder / MANIFEST}: "
                      f"their samples are counted from the tar headers")
    counts = []
    for s in shards:
        if Path(s).name in listed:
            counts.append(listed[Path(s).name])
            continue
        n, why = scan_tar(s)
        counts.append(n)
        if why and damage is not None:
            damage[s] = why
    return counts
