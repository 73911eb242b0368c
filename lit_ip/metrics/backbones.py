"""Feature networks for LPIPS, FID and KID, in plain torch (torchvision is not needed).

* :class:`AlexNetFeatures` -- the convolutional part of AlexNet with torchvision's
  parameter names (``features.0.weight`` ...), so torchvision's
  ``alexnet-owt-7be5be79.pth`` loads strictly. Returns the five ReLU taps LPIPS uses.
* :class:`PooledFeatures` -- global-average-pooled last tap of a tap network: an
  ``(N, d)`` feature matrix for FID / KID (torchmetrics' ``feature=`` argument).

Weights always come from a local file (:func:`load_state_dict`); nothing is downloaded.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: where weight files are looked for when the config gives no path
WEIGHTS_ENV = "LIT_IP_WEIGHTS"
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
VGG16_FILE = "vgg16-397923af.pth"


def weights_dir() -> Path:
    """``$LIT_IP_WEIGHTS`` or ``~/.cache/lit_ip/weights``."""
    return Path(os.environ.get(WEIGHTS_ENV) or Path.home() / ".cache" / "lit_ip" / "weights").expanduser()


def torch_hub_checkpoints() -> Path:
    """torch hub's download folder, ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch``),
    where users who ran torchvision / torch-fidelity already have the weight files."""
    home = os.environ.get("TORCH_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torch"
    return Path(home).expanduser() / "hub" / "checkpoints"


def search_folders() -> list[Path]:
    """Folders searched for a weight file by name: ours first, then torch hub's."""
    return [weights_dir(), torch_hub_checkpoints()]


def find_weights(names: Union[str, Sequence[str]], path: Optional[str] = None) -> tuple[Optional[Path], list[str]]:
    """``(file, places looked)``: ``path`` if given (it must exist), else the first of ``names``
    found in :func:`search_folders`; ``None`` when absent."""
    if path is not None:
        p = Path(path).expanduser()
        return (p if p.is_file() else None), [str(p)]
    names = [names] if isinstance(names, str) else list(names)
    looked = [str(folder / n) for folder in search_folders() for n in names]
    for p in looked:
        if Path(p).is_file():
            return Path(p), looked
    return None, looked


def load_state_dict(path: Union[str, Path]) -> dict[str, Tensor]:
    """Tensors only: safetensors, or ``torch.load(weights_only=True)`` on CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


def load_prefixed(module: nn.Module, state: dict[str, Tensor], prefix: str, source: str) -> None:
    """Load the entries of ``state`` under ``prefix`` into ``module``, strictly."""
    sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    expected = set(module.state_dict())
    missing, unexpected = expected - set(sub), set(sub) - expected
    if missing or unexpected:
        raise ValueError(f"{source}: weights do not match {type(module).__name__} "
                         f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})")
    module.load_state_dict(sub, strict=True)


def to_rgb(x: Tensor, min_size: int = 0) -> Tensor:
    """(B, 1 or 3, H, W) -> (B, 3, H', W'), upsampled (bilinear) so that min(H', W') >= min_size."""
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    elif x.shape[1] != 3:
        raise ValueError(f"feature networks take 1- or 3-channel images, got {x.shape[1]} channels")
    side = min(x.shape[-2:])
    if side < min_size:
        scale = min_size / side
        x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    return x


class TapFeatures(nn.Module):
    """A torchvision-style ``features`` stack returning the outputs of the layers ``taps``;
    ``channels`` (one per tap) for LPIPS heads; weights from a local file (``features.*``)."""

    def _finish(self, features: nn.Sequential, taps: Sequence[int], channels: Sequence[int],
                weights: Optional[str]) -> None:
        self.features, self.taps, self.channels = features, tuple(taps), tuple(int(c) for c in channels)
        if weights is not None:
            load_prefixed(self.features, load_state_dict(weights), "features.", str(weights))
        self.eval().requires_grad_(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class AlexNetFeatures(TapFeatures):
    """AlexNet's ``features`` (torchvision layout); ``forward`` returns the 5 ReLU outputs.

    Args:
        widths: channels of the 5 convolutions (AlexNet: 64, 192, 384, 256, 256); tests
            pass small widths for a random tiny backbone.
        weights: optional local file with torchvision AlexNet weights (``features.*`` keys).
    """

    TAPS = (1, 4, 7, 9, 11)  # indices of the ReLUs after conv1..conv5

    def __init__(self, widths: Sequence[int] = (64, 192, 384, 256, 256), weights: Optional[str] = None):
        super().__init__()
        w = [3, *[int(c) for c in widths]]
        if len(w) != 6:
            raise ValueError(f"AlexNetFeatures needs 5 widths, got {list(widths)}")
        features = nn.Sequential(
            nn.Conv2d(w[0], w[1], 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(w[1], w[2], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(w[2], w[3], 3, padding=1), nn.ReLU(),
            nn.Conv2d(w[3], w[4], 3, padding=1), nn.ReLU(),
            nn.Conv2d(w[4], w[5], 3, padding=1), nn.ReLU(),
        )
        self._finish(features, self.TAPS, w[1:], weights)


class VGG16Features(TapFeatures):
    """VGG-16's ``features`` (torchvision layout, ``vgg16-397923af.pth`` loads strictly);
    ``forward`` returns the 5 ReLU taps LPIPS-VGG uses (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).

    Args:
        widths: channels of the 5 stages (VGG-16: 64, 128, 256, 512, 512); tests may pass small ones.
        weights: optional local file with torchvision VGG-16 weights (``features.*`` keys used).
    """

    DEPTHS = (2, 2, 3, 3, 3)

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 512, 512), weights: Optional[str] = None):
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"VGG16Features needs 5 widths, got {list(widths)}")
        layers, taps, cin = [], [], 3
        for stage, (depth, w) in enumerate(zip(self.DEPTHS, widths)):
            if stage:
                layers.append(nn.MaxPool2d(2, 2))
            for _ in range(depth):
                layers += [nn.Conv2d(cin, int(w), 3, padding=1), nn.ReLU()]
                cin = int(w)
            taps.append(len(layers) - 1)  # (3, 8, 15, 22, 29) as in LPIPS
        self._finish(nn.Sequential(*layers), taps, widths, weights)


class PooledFeatures(nn.Module):
    """``(N, C, H, W)`` images in [0, 1] -> ``(N, d)`` pooled features of the last tap.

    Inputs are scaled to ImageNet statistics, made 3-channel and upsampled to ``min_size``.
    """

    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, backbone: nn.Module, min_size: int = 64):
        super().__init__()
        self.backbone = backbone
        self.min_size = int(min_size)
        self.num_features = int(backbone.channels[-1])
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        x = (to_rgb(x.float(), self.min_size) - self.mean) / self.std
        return self.backbone(x)[-1].mean(dim=(-2, -1))
