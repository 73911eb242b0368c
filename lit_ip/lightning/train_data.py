"""DataModule for prior training over any image source, with a held-out split and augmentation.

Items follow the data-set contract ``{"image": (C, H, W) in [0, 1], "key", "index"}``.
Held-out images come either from a separate source (``heldout``, e.g. the bundled
data sets' ``split="heldout"``) or from a fixed, seeded fraction of ``train``
(``heldout_fraction``); they are never used for training and feed ``val_dataloader``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from lightning import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset


class Augmented(Dataset):
    """Label-free augmentation of a source: random horizontal / vertical flips, 90-degree
    rotations (square images only) and translations by up to ``max_shift`` pixels (reflect
    padding), drawn from torch's global RNG."""

    def __init__(self, source: Dataset, hflip: bool = True, vflip: bool = False, rot90: bool = False,
                 max_shift: int = 0):
        self.source, self.hflip, self.vflip, self.rot90 = source, hflip, vflip, rot90
        self.max_shift = int(max_shift)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.source[i])
        x = item["image"]
        if self.hflip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        if self.vflip and torch.rand(()) < 0.5:
            x = x.flip(-2)
        if self.rot90 and x.shape[-1] == x.shape[-2]:
            x = torch.rot90(x, int(torch.randint(0, 4, ())), dims=(-2, -1))
        if self.max_shift:
            x = shift(x, *(int(v) for v in torch.randint(-self.max_shift, self.max_shift + 1, (2,))))
        item["image"] = x.contiguous()
        return item


def shift(x: Tensor, dy: int, dx: int) -> Tensor:
    """Translate a (C, H, W) image by (dy, dx) pixels, filling in by reflection."""
    p = max(abs(dy), abs(dx))
    if p == 0:
        return x
    padded = F.pad(x[None], (p, p, p, p), mode="reflect")[0]
    H, W = x.shape[-2:]
    return padded[:, p - dy:p - dy + H, p - dx:p - dx + W]


def split_indices(n: int, heldout_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Fixed (seeded) train / held-out index split of ``range(n)``."""
    if not 0 <= heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    k = int(round(n * heldout_fraction))
    return sorted(perm[k:]), sorted(perm[:k])


class TrainingData(LightningDataModule):
    """Training / held-out loaders over image sources.

    Args:
        train: training source (any map-style data set following the item contract).
        heldout: held-out source (validation); if None, ``heldout_fraction`` of ``train``.
        heldout_fraction: fraction of ``train`` held out when ``heldout`` is None.
        split_seed: seed of that split.
        hflip, vflip, rot90, max_shift: augmentation of training items (see :class:`Augmented`).
        batch_size: training batch size (validation uses the same).
        samples_per_epoch: items drawn (with replacement) per "epoch"; default ``len(train)``
            without replacement. Small data sets train by ``max_steps`` anyway.
        num_workers: DataLoader workers (0 on small CPU machines).
    """

    def __init__(self, train: Dataset, heldout: Optional[Dataset] = None, heldout_fraction: float = 0.0,
                 split_seed: int = 0, hflip: bool = True, vflip: bool = False, rot90: bool = False,
                 max_shift: int = 0, batch_size: int = 32, samples_per_epoch: Optional[int] = None, num_workers: int = 0):
        super().__init__()
        if heldout is None and heldout_fraction > 0:
            tr, ho = split_indices(len(train), heldout_fraction, split_seed)
            train, heldout = Subset(train, tr), Subset(train, ho)
        if len(train) == 0:
            raise ValueError("the training source is empty")
        self.train_set = Augmented(train, hflip, vflip, rot90, max_shift)
        self.heldout_set = heldout
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.samples_per_epoch = samples_per_epoch

    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_set.source[0]["image"].shape)

    def train_dataloader(self) -> DataLoader:
        if self.samples_per_epoch:
            sampler = RandomSampler(self.train_set, replacement=True, num_samples=int(self.samples_per_epoch))
        else:
            sampler = RandomSampler(self.train_set)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, drop_last=True
                          if len(self.train_set) >= self.batch_size else False,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def val_dataloader(self):
        if self.heldout_set is None or len(self.heldout_set) == 0:
            return []
        return DataLoader(self.heldout_set, batch_size=self.batch_size, shuffle=False,
                          num_workers=self.num_workers)
