"""The 100 non-face crops of ``skimage.data.lfw_subset()`` (its images 100..199), a small new set for
fine-tuning the shipped faces priors (grayscale 25x25, resized to ``size``; nothing is downloaded).

Fixed split: non-faces 100..159 train (60), 180..199 held out (20); 160..179 are unused (a spare
validation set).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .bundled import _check_split, _resize

NONFACE_TRAIN = range(100, 160)
NONFACE_HELDOUT = range(180, 200)


class LFWNonFaces(Dataset):
    """Non-face crops of ``lfw_subset`` (module docstring); items follow the data-set contract.

    Args:
        split: ``"train"``, ``"heldout"`` or ``"all"`` (100..199).
        size: output side length.
    """

    def __init__(self, split: str = "train", size: int = 32):
        import skimage.data as data

        self.split, self.size = _check_split(split), int(size)
        ids = {"train": NONFACE_TRAIN, "heldout": NONFACE_HELDOUT, "all": range(100, 200)}[split]
        crops = torch.from_numpy(np.asarray(data.lfw_subset(), dtype=np.float32))
        if crops.shape[0] < 200:
            raise ValueError(f"lfw_subset has {crops.shape[0]} images; expected 200 (100 faces, 100 non-faces)")
        self.ids = list(ids)
        self.images = torch.stack([_resize(crops[i][None], self.size) for i in self.ids])

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i].clone(), "key": f"lfw_nonface_{self.ids[i]:03d}", "index": int(i)}
