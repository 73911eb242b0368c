"""Write the bundled folder of held-out crops, ``lit_ip/assets/heldout_crops/KEY.png``.

Eight RGB 32x32 crops of ``NaturalCrops(split="heldout", size=32)`` (skimage's "chelsea" and
"coffee", never seen in training) at evenly spaced positions ``round((k + 0.5) * n / 8)``, so the
choice is a rule, not a pick. ``configs/predict/all_methods.yaml`` and
``benchmarks/real_images.py`` read this folder; ``tests/test_all_methods_config.py`` checks it
matches the data set (up to 8-bit rounding).

    python tools/make_heldout_crops.py
"""
from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent.parent / "lit_ip" / "assets" / "heldout_crops"
COUNT = 8


def heldout_indices(n: int, count: int = COUNT) -> list[int]:
    return [int((k + 0.5) * n / count) for k in range(count)]


def main() -> None:
    from lit_ip import io
    from lit_ip.data.bundled import NaturalCrops

    data = NaturalCrops(split="heldout", size=32)
    FOLDER.mkdir(parents=True, exist_ok=True)
    for i in heldout_indices(len(data)):
        item = data[i]
        io.write_png(FOLDER / f"{item['key']}.png", item["image"])
        print(FOLDER / f"{item['key']}.png")


if __name__ == "__main__":
    main()
