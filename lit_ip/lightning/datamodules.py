"""DataModules: any map-style data set of ``{"image", "key", "index"}`` items
(:class:`ImageDataModule`) and webdataset shards (:class:`ShardDataModule`); the training
DataModule is :class:`lit_ip.lightning.train_data.TrainingData`.

For ``predict``, Lightning wraps the loader in its unrepeated distributed sampler
under DDP (interleaved indices, no padding, no duplicates), so every item is
processed by exactly one rank; outputs are written by
:class:`~lit_ip.lightning.writer.PredictionWriter`.
"""
from __future__ import annotations

from typing import Optional, Union

from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data._utils.collate import default_collate

from ..data import shards as _shards


def collate_items(items: list[dict]) -> dict:
    """Stack ``image`` (and ``y``) tensors, keep ``key`` as a list; name the mismatch if shapes differ."""
    for name in ("image", "y"):
        shapes = {tuple(it[name].shape) for it in items if name in it}
        if len(shapes) > 1:
            keys = [it.get("key") for it in items]
            raise ValueError(f"items {keys} have {name}s of different shapes {sorted(shapes)}: "
                             f"give the data source a fixed size, or use batch_size=1")
    return default_collate(items)


class ImageDataModule(LightningDataModule):
    """Wrap a data set ``source`` (chosen by ``class_path`` in YAML).

    Args:
        source: a map-style data set of ``{"image", "key", "index"}`` dicts, e.g.
            :class:`lit_ip.data.folder.ImageFolder`, :class:`lit_ip.data.bundled.LFWFaces`,
            :class:`lit_ip.data.analytic.AnalyticPriorSamples`.
        batch_size: items per batch (per process).
        num_workers: DataLoader workers (0 = load in the main process).
        limit: use only the first ``limit`` items (after ``indices``).
        indices: use only these item positions (e.g. a spread-out handful for a demo); items
            keep their own ``index``/``key``, so seeds and file names do not change.
        shuffle_train: shuffle the training loader (``fit``).
    """

    def __init__(self, source: Dataset, batch_size: int = 8, num_workers: int = 0,
                 limit: Optional[int] = None, indices: Optional[list[int]] = None,
                 shuffle_train: bool = True):
        super().__init__()
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if limit is not None and int(limit) < 1:
            raise ValueError(f"limit must be >= 1 (or None for all items), got {limit}")
        self.source = source
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.limit, self.shuffle_train = limit, bool(shuffle_train)
        self.indices = None if indices is None else [int(i) for i in indices]

    @property
    def dataset(self) -> Dataset:
        n = len(self.source)
        if n == 0:
            raise ValueError(f"data source {type(self.source).__name__} is empty")
        chosen = list(range(n)) if self.indices is None else self.indices
        if len(set(chosen)) != len(chosen):
            raise ValueError("indices contain repeats: each item must be processed once")
        bad = [i for i in chosen if not 0 <= i < n]
        if bad:
            raise ValueError(f"indices {bad[:5]} out of range for {type(self.source).__name__} of {n} items")
        if self.limit is not None:
            chosen = chosen[: int(self.limit)]
        return self.source if chosen == list(range(n)) else Subset(self.source, chosen)

    def report_skipped_to(self, errors_dir) -> None:
        """List the items the source left out (e.g. ``ImageFolder(on_error="skip")``) in
        ``errors_dir`` (the prediction writer's ``skipped/``; ``summary.json`` lists them)."""
        skipped = getattr(self.source, "skipped", None)
        if skipped:
            import json

            from .. import io

            io.write_text(io.safe_path(errors_dir, "skipped-rank0.jsonl"),
                          "".join(json.dumps(r) + "\n" for r in skipped))

    def _loader(self, shuffle: bool) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, collate_fn=collate_items,
                          persistent_workers=self.num_workers > 0)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(shuffle=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader(shuffle=self.shuffle_train)


class ShardDataModule(LightningDataModule):
    """Prediction data from webdataset shards; each rank's shard list is set in ``setup()``.

    Args:
        shards, on_error, channels: see :class:`lit_ip.data.shards.ShardSource`.
        batch_size, num_workers: DataLoader settings (``num_workers=0`` on small machines;
            with workers, use at least ``world_size * num_workers`` shards or some idle).
        errors_dir: where skipped samples are listed (one file per rank).
    """

    def __init__(self, shards: Union[str, list[str]], batch_size: int = 8, num_workers: int = 0,
                 on_error: str = "raise", channels: Optional[int] = None, errors_dir: Optional[str] = None):
        super().__init__()
        if on_error not in _shards.ON_ERROR:
            raise ValueError(f"on_error must be one of {_shards.ON_ERROR}, got {on_error!r}")
        self.shards, self.batch_size, self.num_workers = shards, int(batch_size), int(num_workers)
        self.on_error, self.channels, self.errors_dir = on_error, channels, errors_dir
        self.source: Optional[_shards.ShardSource] = None

    def report_skipped_to(self, errors_dir) -> None:
        """List skipped samples in ``errors_dir`` unless configured otherwise (the prediction
        writer points this into its output folder so the run summary can list them)."""
        if self.errors_dir is None:
            self.errors_dir = str(errors_dir)
            if self.source is not None:
                self.source.errors_dir = self.errors_dir

    def setup(self, stage: Optional[str] = None) -> None:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        self.source = _shards.ShardSource(self.shards, on_error=self.on_error, errors_dir=self.errors_dir,
                                  channels=self.channels)
        self.source.assign(rank, world)

    def predict_dataloader(self) -> DataLoader:
        if self.source is None:
            self.setup("predict")
        return DataLoader(self.source, batch_size=self.batch_size, num_workers=self.num_workers,
                          collate_fn=_shards.collate_items, persistent_workers=False)

    def skipped(self) -> list[dict]:
        """Samples skipped so far (all ranks when ``errors_dir`` is set, else this process)."""
        if self.errors_dir is not None:
            return _shards.read_skipped(self.errors_dir)
        return list(self.source.skipped) if self.source is not None else []
