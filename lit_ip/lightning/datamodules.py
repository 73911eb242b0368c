"""DataModules: any map-style data set of ``{"image", "key", "index"}`` items.

For ``predict``, Lightning wraps the loader in its unrepeated distributed sampler
under DDP (interleaved indices, no padding, no duplicates), so every item is
processed by exactly one rank; outputs are written by
:class:`~lit_ip.lightning.writer.PredictionWriter`.
"""
from __future__ import annotations

from typing import Optional

from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data._utils.collate import default_collate


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
