"""Subsets of a data set for small-data experiments (the first ``n`` items, or given items)."""
from __future__ import annotations

from typing import Optional, Sequence

from torch.utils.data import Dataset


class FirstItems(Dataset):
    """Items ``0..n-1`` of ``source`` (or the listed ``items``), re-indexed from 0, keys kept.

    Args:
        source: any data set following the item contract (``{"image", "key", "index"}``).
        n: how many leading items to keep.
        items: explicit item indices instead of ``n``.
    """

    def __init__(self, source: Dataset, n: Optional[int] = None, items: Optional[Sequence[int]] = None):
        if (n is None) == (items is None):
            raise ValueError("give exactly one of n and items")
        self.items = list(range(int(n))) if items is None else [int(i) for i in items]
        if not self.items or max(self.items) >= len(source) or min(self.items) < 0:
            raise ValueError(f"items must be non-empty indices into a data set of {len(source)} items")
        self.source = source

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.source[self.items[i]])
        item["index"] = int(i)
        return item
