"""Webdataset tar shards as a data source, split across ranks and DataLoader workers.

Items follow the data-set contract ``{"image", "key", "index"}`` plus, when stored,
``"y"`` (a measurement from ``<key>.y.npy``) and ``"meta"`` (the ``<key>.json`` dict).
``key`` is the sample's ``__key__``; ``index`` is its position in the whole data set
(shard offset from ``manifest.json`` -- or from counting the tar members when there is
none -- plus the position in its shard), so per-sample seeds do not depend on how the
shards are split.

Splitting: :meth:`ShardSource.assign` gives rank ``r`` of ``w`` the shards ``r, r+w, ...``;
:class:`lit_ip.lightning.datamodules.ShardDataModule` calls it in ``setup()`` from ``trainer.global_rank`` /
``world_size`` (never from environment variables inside workers), and webdataset gets
``nodesplitter=None``, ``shardshuffle=False`` and splits that list over workers. Ranks
may get different numbers of items; nothing here is a collective.

Errors: a truncated shard or an image that does not decode raises :class:`ShardError`
naming the shard and key; with ``on_error="skip"`` the sample (or the rest of the shard)
is skipped and recorded in :attr:`ShardSource.skipped` and, if ``errors_dir`` is set, in
``errors_dir/skipped-rank<r>.jsonl`` (read back with :func:`read_skipped`).
"""
from __future__ import annotations

import glob
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from .make_shards import IMAGE_EXTS, MANIFEST

ON_ERROR = ("raise", "skip")


class ShardError(RuntimeError):
    """A shard or one of its samples cannot be read."""


def expand_shards(shards: Union[str, Sequence[str]]) -> list[str]:
    """A folder (its ``*.tar``, sorted), a brace pattern ``a-{000..009}.tar``, a glob, or a list."""
    if isinstance(shards, (list, tuple)):
        out = [str(s) for s in shards]
    elif os.path.isdir(shards):
        out = sorted(glob.glob(os.path.join(shards, "*.tar")))
    else:
        import braceexpand

        out = [p for pat in braceexpand.braceexpand(shards) for p in (sorted(glob.glob(pat)) or [pat])]
    missing = [s for s in out if not os.path.isfile(s)]
    if not out or missing:
        raise FileNotFoundError(f"no shards found for {shards!r}" if not out else f"shard files missing: {missing[:5]}")
    return out


def count_samples(shard: str) -> int:
    """Number of samples (distinct keys in a row) of a tar, reading headers only."""
    n, last = 0, None
    try:
        with tarfile.open(shard, mode="r|*") as tar:
            for info in tar:
                if not info.isreg():
                    continue
                key = _split_name(info.name)[0]
                if key is not None and key != last:
                    n, last = n + 1, key
    except (tarfile.TarError, OSError, EOFError):
        pass  # a truncated shard counts what it has; reading it reports the damage
    return n


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


def shard_counts(shards: Sequence[str]) -> list[int]:
    """Sample counts from the manifest beside the shards, else by counting tar members."""
    folder = Path(shards[0]).parent
    manifest = folder / MANIFEST
    if manifest.is_file():
        listed = {s["name"]: int(s["count"]) for s in json.loads(manifest.read_text())["shards"]}
        if all(Path(s).parent == folder and Path(s).name in listed for s in shards):
            return [listed[Path(s).name] for s in shards]
    return [count_samples(s) for s in shards]


def decode_image(data: bytes, ext: str) -> torch.Tensor:
    """Image bytes -> float (C, H, W) in [0, 1] (gray: C = 1, RGB(A): C = 3)."""
    if ext == "npy":
        arr = np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32)
        arr = arr[None] if arr.ndim == 2 else arr
        if arr.ndim != 3:
            raise ValueError(f"a .npy image must be (C, H, W) or (H, W), got shape {arr.shape}")
        return torch.from_numpy(arr).clamp(0, 1)
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I"):
            arr = np.asarray(im, dtype=np.float32) / 65535.0
        else:
            im = im.convert("L" if im.mode in ("1", "L", "LA") else "RGB")
            arr = np.asarray(im, dtype=np.float32) / 255.0
    arr = arr[..., None] if arr.ndim == 2 else arr
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def read_skipped(errors_dir: Union[str, Path]) -> list[dict]:
    """Skipped samples recorded by all ranks (deduplicated, sorted by shard and key)."""
    records = {}
    for f in sorted(Path(errors_dir).glob("skipped-rank*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                records[(r["shard"], r.get("key") or "")] = r
    return [records[k] for k in sorted(records)]


class ShardSource(IterableDataset):
    """Samples of webdataset tar shards (see the module docstring).

    Args:
        shards: folder of ``*.tar``, brace pattern, glob or list of paths.
        on_error: ``"raise"`` (stop, naming shard and key) or ``"skip"`` (record and go on).
        image_ext: image extensions looked for, in order.
        errors_dir: folder for the per-rank list of skipped samples.
        channels: convert images to 1 or 3 channels (``None`` keeps them).
    """

    def __init__(self, shards: Union[str, Sequence[str]], on_error: str = "raise",
                 image_ext: Sequence[str] = (*IMAGE_EXTS, "npy"), errors_dir: Optional[str] = None,
                 channels: Optional[int] = None):
        super().__init__()
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.shards = expand_shards(shards)
        self.on_error, self.image_ext = on_error, tuple(image_ext)
        self.errors_dir, self.channels = errors_dir, channels
        counts = shard_counts(self.shards)
        self.offsets = dict(zip(self.shards, np.cumsum([0, *counts[:-1]]).tolist()))
        self.counts = dict(zip(self.shards, counts))
        self.rank, self.world_size = 0, 1
        self.assigned = list(self.shards)
        self.skipped: list[dict] = []

    @property
    def num_items(self) -> int:
        """Samples in this rank's shards. Deliberately not ``__len__``: given a length of 0 on a
        rank without shards, Lightning refuses or skips that rank's predict loop, and the other
        ranks' end-of-epoch collectives fail."""
        return sum(self.counts[s] for s in self.assigned)

    def assign(self, rank: int, world_size: int) -> list[str]:
        """Give this rank the shards ``rank, rank + world_size, ...``."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.rank, self.world_size = int(rank), int(world_size)
        self.assigned = self.shards[rank::world_size]
        return self.assigned

    # --- errors -------------------------------------------------------------------
    def _record(self, shard: str, key: Optional[str], error: str) -> None:
        what = f"shard {shard}" + (f", key {key!r}" if key else "") + f": {error}"
        if self.on_error == "raise":
            raise ShardError(f"{what} (set on_error='skip' to skip and list such samples instead)")
        rec = {"shard": shard, "key": key, "error": error}
        self.skipped.append(rec)
        if self.errors_dir is not None:
            os.makedirs(self.errors_dir, exist_ok=True)
            with open(os.path.join(self.errors_dir, f"skipped-rank{self.rank}.jsonl"), "a") as f:
                f.write(json.dumps(rec) + "\n")

    # --- iteration -----------------------------------------------------------------
    def _raw(self, state: dict) -> Iterator[dict]:
        import webdataset as wds

        def handler(exn: Exception) -> bool:
            url = next((a for a in reversed(exn.args) if isinstance(a, str) and a in self.offsets), None)
            if url is None:
                raise exn  # re-raised so that webdataset adds the shard's url
            if url not in state["broken"]:
                cut, last = find_damage(url)
                state["broken"][url] = cut
                where = (f"truncated tar: sample {cut!r} is cut off (last complete sample {last!r})"
                         if cut else "unreadable tar")
                reason = str(exn.args[0]).split(" @ ")[0] if exn.args else ""
                self._record(url, cut, f"{where}; {type(exn).__name__}: {reason}")
            return True

        if not self.assigned:
            return iter(())
        return iter(wds.WebDataset(self.assigned, shardshuffle=False, nodesplitter=None,
                                   workersplitter=wds.split_by_worker, handler=handler, empty_check=False))

    def __iter__(self) -> Iterator[dict]:
        state = {"last": {}, "pos": {}, "broken": {}, "url": None}
        try:
            yield from self._items(state)
        except ShardError:
            raise
        except Exception as err:
            url, key = state["url"], state["last"].get(state["url"])
            raise ShardError(f"reading shards failed after shard {url}, key {key!r}: "
                             f"{type(err).__name__}: {err}") from err

    def _items(self, state: dict) -> Iterator[dict]:
        for raw in self._raw(state):
            url, key = raw["__url__"], raw["__key__"]
            state["url"] = url
            pos = state["pos"].get(url, 0)
            state["pos"][url], state["last"][url] = pos + 1, key
            if url in state["broken"] and key == state["broken"][url]:
                continue  # the partial sample of a truncated shard (already recorded)
            item = self._item(raw, url, key, pos)
            if item is not None:
                yield item

    def _item(self, raw: dict, url: str, key: str, pos: int) -> Optional[dict]:
        if pos >= self.counts[url]:
            raise ShardError(f"shard {url} has more samples than its manifest says ({self.counts[url]}); "
                             f"rewrite manifest.json or remove it")
        ext = next((e for e in self.image_ext if e in raw), None)
        try:
            if ext is None:
                raise ValueError(f"no image file (looked for .{', .'.join(self.image_ext)}); "
                                 f"files: {sorted(k for k in raw if not k.startswith('__'))}")
            image = decode_image(raw[ext], ext)
            image = self._convert(image)
            item = {"image": image, "key": key, "index": self.offsets[url] + pos}
            if "y.npy" in raw:
                item["y"] = torch.from_numpy(np.load(io.BytesIO(raw["y.npy"]), allow_pickle=False).astype(np.float32))
            if "json" in raw:
                item["meta"] = json.loads(raw["json"])
        except Exception as err:  # noqa: BLE001 - any decoding failure names shard and key
            self._record(url, key, f"cannot decode ({type(err).__name__}: {err})")
            return None
        return item

    def _convert(self, image: torch.Tensor) -> torch.Tensor:
        if self.channels is None or image.shape[0] == self.channels:
            return image
        if self.channels == 1:
            return image.mean(dim=0, keepdim=True)
        if self.channels == 3 and image.shape[0] == 1:
            return image.expand(3, -1, -1).clone()
        raise ValueError(f"cannot convert a {image.shape[0]}-channel image to {self.channels} channels")


def collate_items(items: list[dict]) -> dict:
    """Stack images (and stored measurements); keep keys and metadata as lists."""
    if not items:
        raise ValueError("empty batch")
    out = {"image": torch.stack([it["image"] for it in items]),
           "key": [it["key"] for it in items],
           "index": torch.tensor([it["index"] for it in items], dtype=torch.long)}
    if any("y" in it for it in items):
        if not all("y" in it for it in items):
            missing = [it["key"] for it in items if "y" not in it]
            raise ShardError(f"some samples have a stored measurement and others not: {missing[:5]}")
        out["y"] = torch.stack([it["y"] for it in items])
    if any("meta" in it for it in items):
        out["meta"] = [it.get("meta", {}) for it in items]
    return out
