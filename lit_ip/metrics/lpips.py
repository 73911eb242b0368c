"""LPIPS (Zhang et al. 2018) over any tap backbone, with weights from local files.

``d(x, y) = sum_l mean_hw || w_l * (f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)|) ||^2`` where
``f_l`` are the backbone's taps, normalised over channels, and ``w_l`` are non-negative
1x1 linear heads. The heads of the AlexNet variant ship inside the torchmetrics wheel
(``lpips_models/alex.pth``); the AlexNet backbone itself is a file the user provides.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from .backbones import load_state_dict, to_rgb


def shipped_heads(net: str = "alex") -> Path:
    """Path of the LPIPS linear heads shipped with torchmetrics (a local file)."""
    import torchmetrics.functional.image as tm_image

    return Path(tm_image.__file__).parent / "lpips_models" / f"{net}.pth"


class LPIPS(nn.Module):
    """Per-image LPIPS distance between batches in [0, 1].

    Args:
        backbone: module returning a list of feature maps, with ``channels`` (one per tap).
        heads: local file of the linear heads (keys ``lin{i}.model.1.weight``); ``None``
            leaves them randomly initialised (tests only).
        min_size: images are upsampled (bilinear) so that their short side is at least this.
    """

    SHIFT = (-0.030, -0.088, -0.188)
    SCALE = (0.458, 0.448, 0.450)

    def __init__(self, backbone: nn.Module, heads: Optional[str] = None, min_size: int = 32):
        super().__init__()
        self.backbone = backbone
        self.min_size = int(min_size)
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in backbone.channels)
        if heads is None:
            for h in self.heads:  # non-negative like trained heads, so d >= 0
                h.weight.data.abs_()
        else:
            state = load_state_dict(heads)
            try:
                own = {f"{i}.weight": state[f"lin{i}.model.1.weight"] for i in range(len(self.heads))}
            except KeyError as err:
                raise ValueError(f"LPIPS heads file {heads!r} lacks {err.args[0]}") from None
            self.heads.load_state_dict(own, strict=True)
        self.register_buffer("shift", torch.tensor(self.SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(self.SCALE).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    def _taps(self, x: Tensor) -> list[Tensor]:
        x = (to_rgb(x.float(), self.min_size) * 2 - 1 - self.shift) / self.scale
        return [f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10) for f in self.backbone(x)]

    @torch.no_grad()
    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape != y.shape:
            raise ValueError(f"LPIPS needs images of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        d = x.new_zeros(x.shape[0], dtype=torch.float32)
        for head, fx, fy in zip(self.heads, self._taps(x), self._taps(y)):
            d = d + head((fx - fy) ** 2).mean(dim=(1, 2, 3))
        return d
