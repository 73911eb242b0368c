"""Bundled image data sets (from ``skimage.data``; nothing is downloaded).

Every item is ``{"image": FloatTensor (C, H, W) in [0, 1], "key": str, "index": int}``
(``index`` is the position in the data set, ``key`` a stable name for output files).

* :class:`LFWFaces` -- the 100 face crops of ``skimage.data.lfw_subset()`` (the first
  100 of its 200 images; the rest are non-faces), grayscale 25x25, resized to ``size``.
  Fixed split: faces 0..79 train, faces 80..99 held out.
* :class:`NaturalCrops` -- RGB ``size`` x ``size`` crops of ``skimage.data`` photographs,
  downscaled by ``scale`` first. Train photographs: astronaut, rocket, motorcycle_left,
  motorcycle_right (the two views of ``stereo_motorcycle``), immunohistochemistry.
  Held-out photographs: chelsea (the cat), coffee. Crops lie on a fixed grid.
* :class:`SkimagePhotos` -- whole photographs resized to ``size`` (for larger images).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

LFW_TRAIN = range(0, 80)
LFW_HELDOUT = range(80, 100)
NATURAL_TRAIN = ("astronaut", "rocket", "motorcycle_left", "motorcycle_right", "immunohistochemistry")
NATURAL_HELDOUT = ("chelsea", "coffee")
SPLITS = ("train", "heldout", "all")


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    return split


@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    """A ``skimage.data`` photograph as float32 (H, W, C) in [0, 1] (RGB, or C=1 for gray)."""
    import skimage.data as data

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = data.stereo_motorcycle()
        im = left if name == "motorcycle_left" else right
    else:
        try:
            im = getattr(data, name)()
        except AttributeError:
            raise ValueError(f"skimage.data has no photograph {name!r}") from None
    im = np.asarray(im)
    if im.dtype == bool:
        im = im.astype(np.float32)
    elif np.issubdtype(im.dtype, np.integer):
        im = im.astype(np.float32) / np.iinfo(im.dtype).max
    im = im.astype(np.float32)
    if im.ndim == 2:
        im = im[..., None]
    if im.shape[-1] == 4:  # drop alpha
        im = im[..., :3]
    return np.clip(im, 0.0, 1.0)


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    """Antialiased bilinear resize of a (C, H, W) tensor to ``size`` (int or (H, W)), clipped to [0, 1]."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == hw:
        return x
    y = F.interpolate(x[None], size=hw, mode="bilinear", antialias=True, align_corners=False)[0]
    return y.clamp(0, 1)


def _to_gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[0] == 1:
        return x
    w = torch.tensor([0.2125, 0.7154, 0.0721], dtype=x.dtype)  # ITU-R 709, as skimage.color.rgb2gray
    return (w[:, None, None] * x).sum(0, keepdim=True)


class LFWFaces(Dataset):
    """Grayscale faces from ``skimage.data.lfw_subset()`` (items 0..99 are faces).

    Args:
        split: ``"train"`` (faces 0..79), ``"heldout"`` (faces 80..99) or ``"all"``.
        size: output side length (bilinear antialiased resize from 25x25).
    """

    def __init__(self, split: str = "train", size: int = 32):
        import skimage.data as data

        self.split, self.size = _check_split(split), int(size)
        ids = {"train": LFW_TRAIN, "heldout": LFW_HELDOUT, "all": range(100)}[split]
        faces = torch.from_numpy(np.asarray(data.lfw_subset(), dtype=np.float32))[:100]
        self.face_ids = list(ids)
        self.images = torch.stack([_resize(faces[i][None], self.size) for i in self.face_ids])

    def __len__(self) -> int:
        return len(self.face_ids)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i].clone(), "key": f"lfw_{self.face_ids[i]:03d}", "index": int(i)}


class NaturalCrops(Dataset):
    """RGB crops of ``skimage.data`` photographs on a fixed grid.

    Each photograph is downscaled by ``scale`` (antialiased), then cut into
    ``size`` x ``size`` crops at positions ``0, stride, 2 stride, ...`` in both axes.

    Args:
        split: ``"train"`` (astronaut, rocket, motorcycle_left/right, immunohistochemistry),
            ``"heldout"`` (chelsea, coffee) or ``"all"``.
        size: crop side length.
        scale: downscaling factor applied to each photograph before cropping.
        stride: grid step (default ``size // 2`` for train/all, ``size`` -- no overlap -- for heldout).
        random_crops: training augmentation; item ``i`` is then a uniformly random crop
            from the photograph of grid crop ``i`` (drawn from torch's global RNG).
        photos: override the photograph list (names as in ``skimage.data``).
        gray: convert to one channel.
    """

    def __init__(self, split: str = "train", size: int = 32, scale: float = 0.5,
                 stride: Optional[int] = None, random_crops: bool = False,
                 photos: Optional[Sequence[str]] = None, gray: bool = False):
        self.split, self.size = _check_split(split), int(size)
        if photos is None:
            photos = {"train": NATURAL_TRAIN, "heldout": NATURAL_HELDOUT,
                      "all": NATURAL_TRAIN + NATURAL_HELDOUT}[split]
        self.photos = tuple(photos)
        self.stride = int(stride or (self.size if split == "heldout" else self.size // 2))
        self.random_crops = bool(random_crops)
        self.images, self.crops = [], []  # crops: (photo id, top, left)
        for p, name in enumerate(self.photos):
            im = torch.from_numpy(_photo(name)).permute(2, 0, 1).contiguous()
            if gray:
                im = _to_gray(im)
            elif im.shape[0] == 1:
                im = im.expand(3, -1, -1).contiguous()
            h, w = round(im.shape[1] * scale), round(im.shape[2] * scale)
            if min(h, w) < self.size:
                raise ValueError(f"photograph {name!r} is {h}x{w} after scaling by {scale}, "
                                 f"smaller than the crop size {self.size}")
            self.images.append(_resize(im, (h, w)))
            for top in range(0, h - self.size + 1, self.stride):
                for left in range(0, w - self.size + 1, self.stride):
                    self.crops.append((p, top, left))

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> dict:
        p, top, left = self.crops[i]
        im = self.images[p]
        if self.random_crops:
            top = int(torch.randint(0, im.shape[1] - self.size + 1, ()))
            left = int(torch.randint(0, im.shape[2] - self.size + 1, ()))
        crop = im[:, top:top + self.size, left:left + self.size].clone()
        return {"image": crop, "key": f"{self.photos[p]}_{top:04d}_{left:04d}", "index": int(i)}


class SkimagePhotos(Dataset):
    """Whole ``skimage.data`` photographs resized to ``size`` (int: square, or (H, W)).

    Args:
        names: photograph names (``skimage.data`` functions, plus ``motorcycle_left/right``);
            default: the held-out natural photographs.
        size: output size.
        gray: convert to one channel (otherwise grayscale photographs are repeated to RGB).
    """

    def __init__(self, names: Sequence[str] = NATURAL_HELDOUT,
                 size: Union[int, Sequence[int]] = 128, gray: bool = False):
        self.names = tuple(names)
        self.size = size if isinstance(size, int) else tuple(size)
        self.images = []
        for name in self.names:
            im = torch.from_numpy(_photo(name)).permute(2, 0, 1).contiguous()
            im = _to_gray(im) if gray else (im.expand(3, -1, -1).contiguous() if im.shape[0] == 1 else im)
            self.images.append(_resize(im, self.size))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i].clone(), "key": self.names[i], "index": int(i)}
