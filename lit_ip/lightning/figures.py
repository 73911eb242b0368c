"""At-a-glance figures: one grid per task (rows: ground truth, measurement,
pseudo-inverse, each method; columns: a handful of images).

The grid is assembled as one mosaic image (nearest-neighbour upscaling, so pixels stay
visible) and drawn with a single matplotlib axes plus text labels, which keeps it fast.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

LEFT, TOP, CAPTION, GAP = 150, 46, 18, 8  # layout in pixels


@dataclass
class FigureRow:
    """One row of the grid: a label, one image (or None) per column, optional captions."""

    label: str
    images: list[Optional[Tensor]]
    captions: list[str] = field(default_factory=list)


def _fit(img: Tensor, cell: int) -> Tensor:
    """(C, H, W) in [0, 1] -> (3, cell, cell): nearest upscaling that keeps the aspect, centred on white."""
    img = torch.nan_to_num(img.detach().float().cpu(), nan=0.0).clamp(0, 1)
    img = img.expand(3, -1, -1) if img.shape[0] == 1 else img[:3]
    h, w = img.shape[-2:]
    scale = cell / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    img = F.interpolate(img[None], size=(nh, nw), mode="nearest")[0]
    out = torch.ones(3, cell, cell)
    top, left = (cell - nh) // 2, (cell - nw) // 2
    out[:, top:top + nh, left:left + nw] = img
    return out


def image_grid(rows: Sequence[FigureRow], column_titles: Sequence[str], title: str = "",
               cell: int = 0) -> bytes:
    """Render ``rows`` (images (C, H, W) in [0, 1]) as a PNG and return its bytes.

    ``cell`` is the displayed size of one image in pixels (default: the largest image,
    upscaled by an integer factor to at least 96 pixels).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ncols = max([len(column_titles)] + [len(r.images) for r in rows] + [1])
    if cell <= 0:
        biggest = max([max(im.shape[-2:]) for r in rows for im in r.images if im is not None] + [1])
        cell = biggest * max(1, -(-96 // biggest))
    row_h, col_w = cell + CAPTION + GAP, cell + GAP
    height, width = TOP + row_h * len(rows), LEFT + col_w * ncols
    canvas = torch.ones(3, height, width)
    for r, row in enumerate(rows):
        for c, img in enumerate(row.images[:ncols]):
            if img is not None:
                y, x = TOP + r * row_h, LEFT + c * col_w
                canvas[:, y:y + cell, x:x + cell] = _fit(img, cell)
    dpi = 100
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    try:
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(canvas.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_axis_off()
        if title:
            ax.text(width / 2, 14, title, ha="center", va="center", fontsize=11)
        for c, name in enumerate(column_titles[:ncols]):
            ax.text(LEFT + c * col_w + cell / 2, TOP - 10, name, ha="center", va="bottom", fontsize=7)
        for r, row in enumerate(rows):
            y = TOP + r * row_h
            ax.text(LEFT - 10, y + cell / 2, row.label, ha="right", va="center", fontsize=9)
            for c, cap in enumerate(row.captions[:ncols]):
                if cap:
                    ax.text(LEFT + c * col_w + cell / 2, y + cell + 2, cap, ha="center", va="top", fontsize=7)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()
    finally:
        plt.close(fig)
