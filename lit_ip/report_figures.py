"""Figures of ``lit-ip report``: metric-vs-NFE grids, quality-vs-NFE frontiers, image comparisons.

Which points may be joined by a line: two runs' rows of one (task, method) lie on one curve only
if their runs differ in NFE alone. Each row carries

* a *context*: the prior, ``num_samples`` / seed, the task's operator and noise (from the run's
  ``summary.json`` ``run`` lines) and the data section of the run's ``config.yaml`` when saved;
  rows of different contexts never share a panel;
* a *series*: the context plus the method's description with its step counts removed
  (``num_steps=``, ``*_steps=``, ``*iterations=``, ``*_iters=``); rows of one series are joined.

The frontier of a panel is the set of points no other point beats at the same or fewer NFE
(best metric so far, walking up in NFE): the quality one can buy for a given cost.
"""
from __future__ import annotations

import hashlib
import io as _io
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Optional, Sequence

from . import io

__all__ = ["run_contexts", "frontier", "plot_grid", "image_comparison", "NFE_PARAMS"]

#: method arguments that only change the number of network evaluations
NFE_PARAMS = re.compile(r"\b(num_steps|steps|\w+_steps|\w*iterations|\w+_iters)=[^,()]*(, )?")
NOT_TASKS = {"ground_truth", "metrics", "figures", "skipped", "lightning_logs"}
LOWER_IS_BETTER = {"lpips", "lpips_vgg", "fid", "kid_mean", "kid_std", "residual_rms"}


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def run_contexts(run_dir: Path, data: dict) -> dict:
    """``{"task": {name: context}, "method": {name: series part}, "prior": label}`` of one run."""
    lines = [str(x) for x in data.get("run", [])]
    head = [ln for ln in lines if ln.startswith(("prior:", "num_samples:"))]
    cfg = Path(run_dir) / "config.yaml"
    data_section = ""
    if cfg.is_file():
        import yaml

        data_section = json.dumps((yaml.safe_load(cfg.read_text()) or {}).get("data"), sort_keys=True)
    tasks, methods = {}, {}
    for ln in lines:
        m = re.match(r"task (\S+): (.*?)(?: -> methods .*)?$", ln)
        if m:
            tasks[m.group(1)] = _digest("\n".join(head + [m.group(2), data_section]))
        m = re.match(r"method (\S+): (.*)$", ln)
        if m:
            methods[m.group(1)] = NFE_PARAMS.sub("", m.group(2))
    prior = next((ln[len("prior:"):].strip() for ln in head if ln.startswith("prior:")), "")
    return {"task": tasks, "method": methods, "prior": prior}


def frontier(points: Sequence[tuple[float, float]], lower_is_better: bool) -> list[tuple[float, float]]:
    """Points ``(nfe, value)`` that no point with at most their NFE beats (sorted by NFE)."""
    out: list[tuple[float, float]] = []
    sign = -1.0 if lower_is_better else 1.0
    for nfe, v in sorted(points, key=lambda p: (p[0], -sign * p[1])):
        if not out or sign * v > sign * out[-1][1]:
            out.append((nfe, v))
    return out


def _panels(rows: Sequence[dict], metric: str) -> dict[tuple[str, str], list[dict]]:
    panels: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        v = r.get(metric)
        if isinstance(v, (int, float)) and r.get("nfe") and math.isfinite(v):
            panels[(str(r["task"]), r.get("_context", ""))].append(r)
    return dict(sorted(panels.items()))


def panel_frontiers(rows: Sequence[dict], metric: str) -> list[dict]:
    """Frontier rows per panel: ``{task, context, nfe, value, method, run}``."""
    out = []
    for (task, ctx), pts in _panels(rows, metric).items():
        best = frontier([(float(r["nfe"]), float(r[metric])) for r in pts], metric in LOWER_IS_BETTER)
        for nfe, v in best:
            r = next(r for r in pts if float(r["nfe"]) == nfe and float(r[metric]) == v)
            out.append({"task": task, "context": r.get("_prior", ctx), "nfe": nfe, metric: v,
                        "method": r["method"], "run": r["run"]})
    return out


def plot_grid(rows: Sequence[dict], metric: str, path: Path, ncols: int = 3) -> Optional[Path]:
    """``metric`` against NFE (log axis), one panel per (task, context) in a grid of ``ncols``
    columns, one line per series, the panel's frontier dashed; None if no row has both."""
    panels = _panels(rows, metric)
    if not panels:
        return None
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, len(panels)))
    nrows = -(-len(panels) // ncols)
    several = defaultdict(set)
    for task, ctx in panels:
        several[task].add(ctx)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, ((task, ctx), pts) in zip(axes.flat, panels.items()):
        lines: dict[str, list] = defaultdict(list)
        labels: dict[str, str] = {}
        for r in pts:
            lines[r.get("_series", r["method"])].append((float(r["nfe"]), float(r[metric])))
            labels.setdefault(r.get("_series", r["method"]), str(r["method"]))
        same_label = defaultdict(int)
        for s in lines:
            same_label[labels[s]] += 1
        for s, xy in sorted(lines.items(), key=lambda kv: labels[kv[0]]):
            xy.sort()
            label = labels[s] + (f" [{s[-8:]}]" if same_label[labels[s]] > 1 else "")
            ax.plot([p[0] for p in xy], [p[1] for p in xy], marker="o", label=label)
        best = frontier([p for xy in lines.values() for p in xy], metric in LOWER_IS_BETTER)
        ax.step([p[0] for p in best], [p[1] for p in best], where="post", color="k", ls="--", lw=1,
                alpha=0.6, label="frontier")
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations per sample")
        ax.set_ylabel(metric + (" (lower is better)" if metric in LOWER_IS_BETTER else ""))
        prior = pts[0].get("_prior", "")
        ax.set_title(f"task: {task}" + (f"\n{prior[:48]}" if len(several[task]) > 1 and prior else ""),
                     fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return io.write_bytes(path, buf.getvalue())


def _first_sample(folder: Path, key: str) -> Optional[Path]:
    for name in (f"{key}.png", f"{key}_s00.png"):
        if (folder / name).is_file():
            return folder / name
    return None


def _psnr_of(run: Path, key: str) -> dict:
    f = run / "metrics" / f"{key}.json"
    if not f.is_file():
        return {}
    return {(r["task"], r["method"]): r.get("psnr") for r in json.loads(f.read_text()).get("rows", [])
            if str(r.get("sample")) == "0"}


def image_comparison(run_dirs: Sequence, out_dir: Path, max_images: int = 4) -> dict[str, str]:
    """Per task, ``images_TASK.png``: the same images (keys present in every run that has the
    task) in every run and method; rows ground truth, measurement, then ``run/method``."""
    from .lightning.figures import FigureRow, image_grid

    runs = [Path(d) for d in run_dirs]
    tasks = sorted({p.name for r in runs for p in r.iterdir()
                    if p.is_dir() and p.name not in NOT_TASKS and not p.name.startswith(".")})
    out = {}
    for task in tasks:
        have = [r for r in runs if (r / task).is_dir()]
        methods = {r: sorted(p.name for p in (r / task).iterdir() if p.is_dir() and p.name != "measurement")
                   for r in have}
        keys = None
        for r in have:
            ks = {p.stem for p in (r / "ground_truth").glob("*.png")}
            for m in methods[r]:
                ks &= {p.stem.rsplit("_s00", 1)[0] for p in (r / task / m).glob("*.png")
                       if not p.stem.endswith(("_mean", "_std"))}
            keys = ks if keys is None else keys & ks
        keys = sorted(keys or [])[:max_images]
        if not keys:
            continue
        first = have[0]
        rows = [FigureRow("ground truth", [io.read_png(first / "ground_truth" / f"{k}.png") for k in keys])]
        if (first / task / "measurement").is_dir():
            rows.append(FigureRow("measurement", [_load(first / task / "measurement", k) for k in keys]))
        scores = {(r, k): _psnr_of(r, k) for r in have for k in keys}
        for r in have:
            for m in methods[r]:
                caps = [scores[(r, k)].get((task, m)) for k in keys]
                rows.append(FigureRow(f"{r.name}/{m}" if len(have) > 1 else m,
                                      [_load(r / task / m, k) for k in keys],
                                      [f"{c:.2f} dB" if isinstance(c, (int, float)) else "" for c in caps]))
        png = image_grid(rows, keys, title=f"task: {task} (same images in every run)")
        out[task] = str(io.write_bytes(Path(out_dir) / f"images_{task}.png", png))
    return out


def _load(folder: Path, key: str):
    p = _first_sample(folder, key)
    return None if p is None else io.read_png(p)
