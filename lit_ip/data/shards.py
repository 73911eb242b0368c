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

Every sample is accounted for: the samples read from each shard are counted against
``manifest.json`` both ways (more is an error at once, fewer -- e.g. a damaged tar header,
which ``tarfile`` reads as the end of the archive -- when the shard ends), a shard listed
but missing from the folder is an error, and a shard without a manifest entry is scanned
once for bytes after its last readable header.
A key that occurs twice (in two shards read by the same DataLoader worker, or twice in one
shard) is an error naming both shards (or skipped and listed); across workers and ranks the
prediction writer refuses it, naming both items. Errors: a truncated or damaged shard or an image that does not decode raises
:class:`ShardError` naming the shard and key; with ``on_error="skip"`` the sample (or the rest of the shard)
is skipped and recorded in :attr:`ShardSource.skipped` and, if ``errors_dir`` is set, in
``errors_dir/skipped-rank<r>.jsonl`` (read back with :func:`read_skipped`).
"""
from __future__ import annotations

import glob
import io
import json
import os
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from .decode import pil_to_array
from .make_shards import IMAGE_EXTS, MANIFEST
from .shard_index import ShardError, count_samples, find_damage, scan_tar, shard_counts  # noqa: F401

ON_ERROR = ("raise", "skip")


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


def decode_image(data: bytes, ext: str) -> torch.Tensor:
    """Image bytes -> float (C, H, W) in [0, 1] (gray: C = 1, RGB(A): C = 3; see
    :func:`lit_ip.data.decode.pil_to_array`)."""
    if ext == "npy":
        arr = np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32)
        arr = arr[None] if arr.ndim == 2 else arr
        if arr.ndim != 3:
            raise ValueError(f"a .npy image must be (C, H, W) or (H, W), got shape {arr.shape}")
        return torch.from_numpy(arr).clamp(0, 1)
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        arr = pil_to_array(im)  # 8 / 16 bit, alpha composited on white (lit_ip.data.decode)
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
        self.scan_damage: dict[str, str] = {}  # found while counting shards without a manifest
        counts = shard_counts(self.shards, whole_folder=isinstance(shards, str) and os.path.isdir(shards),
                              damage=self.scan_damage)
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

    def _worker_shards(self) -> list[str]:
        """The shards this DataLoader worker reads (webdataset's ``split_by_worker``)."""
        info = torch.utils.data.get_worker_info()
        return self.assigned if info is None else self.assigned[info.id::info.num_workers]

    def _check_finished(self, state: dict, upto: Optional[str] = None) -> None:
        """Every shard read before ``upto`` (all, if None) gave all the samples it should."""
        for url in state["mine"]:
            if url == upto:
                return
            if url in state["checked"]:
                continue
            state["checked"].add(url)
            if url in state["broken"]:
                continue  # damage already recorded by the reader
            got, want = state["pos"].get(url, 0), self.counts[url]
            if got < want:
                _, why = scan_tar(url)
                self._record(url, state["last"].get(url), f"only {got} of the {want} samples listed in "
                             f"{MANIFEST} could be read ({why or 'the tar ends early'})")
            elif url in self.scan_damage:
                self._record(url, state["last"].get(url), f"{self.scan_damage[url]} (no {MANIFEST}: "
                             f"samples after the damage are lost)")

    def __iter__(self) -> Iterator[dict]:
        state = {"last": {}, "pos": {}, "broken": {}, "url": None, "checked": set(),
                 "mine": self._worker_shards(), "seen": {}}
        try:
            yield from self._items(state)
            self._check_finished(state)
        except ShardError:
            raise
        except Exception as err:
            url, key = state["url"], state["last"].get(state["url"])
            raise ShardError(f"reading shards failed after shard {url}, key {key!r}: "
                             f"{type(err).__name__}: {err}") from err

    def _items(self, state: dict) -> Iterator[dict]:
        for raw in self._raw(state):
            url, key = raw["__url__"], raw["__key__"]
            if url != state["url"]:
                self._check_finished(state, upto=url)
            state["url"] = url
            pos = state["pos"].get(url, 0)
            state["pos"][url], state["last"][url] = pos + 1, key
            if url in state["broken"] and key == state["broken"][url]:
                continue  # the partial sample of a truncated shard (already recorded)
            if key in state["seen"]:  # each raw sample is one sample: a key seen before is a duplicate
                first = state["seen"][key]
                self._record(url, key, f"duplicate key: {key!r} is also a sample of shard {first}"
                             if first != url else f"duplicate key: {key!r} occurs twice in this shard")
                continue
            state["seen"][key] = url
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
    for name in ("image", "y"):
        shapes = {tuple(it[name].shape) for it in items if name in it}
        if len(shapes) > 1:
            raise ShardError(f"samples {[it['key'] for it in items]} have {name}s of different shapes "
                             f"{sorted(shapes)}: set channels= or use batch_size=1")
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
