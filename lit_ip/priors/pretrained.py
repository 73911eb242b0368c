"""Priors from directories on disk (our format; nothing is downloaded, nothing unpickled).

A prior directory holds

* ``config.json`` + ``diffusion_pytorch_model.safetensors`` -- a diffusers ``UNet2DModel``;
* ``prior.json`` -- ``{"path": NoisePath.config(), "prediction": ..., "data_range": [lo, hi],
  "image_shape": [C, H, W], "time_scale": ...}``, optionally ``"clip_x0": bool`` (the
  default for :class:`PretrainedPrior`'s ``clip_x0``; false when absent).

A bare name (no path separator, not an existing directory) resolves to the shipped
prior ``lit_ip/assets/priors/<name>/`` (see :func:`shipped_priors`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence, Union

from torch import nn

from ..models import recorded_config
from ..models.unet import WEIGHTS_FILE, DiffusersUNet, load_unet_dir, save_unet_dir
from .config_checks import check_unet_config
from .network import NetworkPrior
from .paths import NoisePath, path_from_config

PRIOR_FILE = "prior.json"
ASSETS = Path(__file__).resolve().parent.parent / "assets" / "priors"
REQUIRED_KEYS = ("path", "prediction", "data_range", "image_shape")


def shipped_priors() -> list[str]:
    """Names of the priors shipped in ``lit_ip/assets/priors``."""
    if not ASSETS.is_dir():
        return []
    return sorted(p.name for p in ASSETS.iterdir() if (p / PRIOR_FILE).is_file())


def resolve_prior_dir(path_or_name: Union[str, os.PathLike]) -> Path:
    """A directory path, or the shipped prior of that name."""
    p = Path(path_or_name).expanduser()
    if p.is_dir():
        return p
    name = str(path_or_name)
    if os.sep not in name and "/" not in name and (ASSETS / name).is_dir():
        return ASSETS / name
    raise FileNotFoundError(f"no prior directory {str(path_or_name)!r} (not a directory, and not a "
                            f"shipped prior; shipped: {shipped_priors()})")


def read_prior_json(directory: Path) -> dict:
    f = directory / PRIOR_FILE
    if not f.is_file():
        raise FileNotFoundError(f"{directory} has no {PRIOR_FILE} describing the noise path and "
                                f"parameterisation (needed keys: {', '.join(REQUIRED_KEYS)})")
    meta = json.loads(f.read_text())
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{f} lacks the keys {missing}")
    return meta


def load_network(path_or_name: Union[str, os.PathLike]) -> DiffusersUNet:
    """The network of a prior directory or of a plain diffusers UNet directory (strict)."""
    return DiffusersUNet.wrap(load_unet_dir(resolve_prior_dir(path_or_name)))


def save_prior_dir(directory: Union[str, os.PathLike], unet: nn.Module, path: NoisePath,
                   prediction: str, data_range: Sequence[float], image_shape: Sequence[int],
                   time_scale: float = 1.0, clip_x0: bool = False, extra: Optional[dict] = None) -> Path:
    """Write a prior directory (``path`` in the network's native units)."""
    d = Path(directory)
    meta = {"path": path.config(), "prediction": prediction,
            "data_range": [float(v) for v in data_range],
            "image_shape": [int(s) for s in image_shape], "time_scale": float(time_scale),
            "clip_x0": bool(clip_x0)}
    meta.update(extra or {})
    meta = json.loads(json.dumps(meta))  # as prior.json reads back
    save_unet_dir(unet, d, record={"prior": recorded_config.prior_fields(meta)})
    (d / PRIOR_FILE).write_text(json.dumps(meta, indent=2))
    return d


class PretrainedPrior(NetworkPrior):
    """A :class:`NetworkPrior` loaded from a prior directory or a shipped prior name.

    Args:
        path_or_name: directory, or shipped name (e.g. ``"faces_ddpm"``).
        image_shape: run on another image size than the one trained on (convolutional networks).
        clip_x0: clamp ``x0_hat`` to [0, 1] (see :class:`NetworkPrior`); default from ``prior.json``.
    """

    def __init__(self, path_or_name: str, image_shape: Optional[Sequence[int]] = None,
                 clip_x0: Optional[bool] = None):
        d = resolve_prior_dir(path_or_name)
        meta = read_prior_json(d)
        recorded_config.check(d / WEIGHTS_FILE, "prior", recorded_config.prior_fields(meta), d / PRIOR_FILE)
        if (d / "config.json").is_file():
            check_unet_config(json.loads((d / "config.json").read_text()), d / "config.json")
        network = load_network(d)
        shape = [int(s) for s in (image_shape or meta["image_shape"])]
        if shape[0] != network.in_channels:
            raise ValueError(f"image_shape {shape} has {shape[0]} channels but the network in {d} "
                             f"takes {network.in_channels}")
        super().__init__(network, path_from_config(meta["path"]), meta["prediction"],
                         meta["image_shape"], meta["data_range"], meta.get("time_scale", 1.0),
                         clip_x0=meta.get("clip_x0", False) if clip_x0 is None else clip_x0)
        self.source = str(d)
        if image_shape is not None:
            factor = network.downsampling_factor
            if any(s % factor for s in shape[1:]):
                raise ValueError(f"image size {shape[1:]} is not divisible by the network's "
                                 f"downsampling factor {factor}")
            self.image_shape = tuple(shape)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
