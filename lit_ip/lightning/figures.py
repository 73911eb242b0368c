"""At-a-glance figures: one grid per task (rows: ground truth, measurement,
pseudo-inverse, each method; columns: a handful of images)."""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Optional, Sequence

from torch import Tensor


@dataclass
class FigureRow:
    """One row of the grid: a label, one image (or None) per column, optional captions."""

    label: str
    images: list[Optional[Tensor]]
    captions: list[str] = field(default_factory=list)


def image_grid(rows: Sequence[FigureRow], column_titles: Sequence[str], title: str = "",
               cell_inches: float = 1.4) -> bytes:
    """Render ``rows`` (images (C, H, W) in [0, 1]) as a PNG and return its bytes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    nrows, ncols = len(rows), max(1, len(column_titles))
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(1.6 + cell_inches * ncols, 0.5 + cell_inches * 1.1 * nrows))
    try:
        for r, row in enumerate(rows):
            for c in range(ncols):
                ax = axes[r][c]
                ax.set_xticks([]), ax.set_yticks([])
                for s in ax.spines.values():
                    s.set_visible(False)
                img = row.images[c] if c < len(row.images) else None
                if img is not None:
                    arr = img.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
                    if arr.shape[-1] == 1:
                        ax.imshow(arr[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                    else:
                        ax.imshow(arr, interpolation="nearest")
                if c < len(row.captions) and row.captions[c]:
                    ax.set_xlabel(row.captions[c], fontsize=7, labelpad=2)
                if r == 0 and c < len(column_titles):
                    ax.set_title(column_titles[c], fontsize=7)
                if c == 0:
                    ax.set_ylabel(row.label, fontsize=8, rotation=0, ha="right", va="center", labelpad=6)
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        return buf.getvalue()
    finally:
        plt.close(fig)
