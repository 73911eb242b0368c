"""``lit-ip report <run_dir> [<run_dir> ...] --out <dir>``: compare finished runs at a glance.

Reads each run's ``summary.json`` (written by the prediction writer: a ``summary`` list of
rows ``{task, method, images, psnr, ssim, ...}``, optionally with ``nfe`` per row or a
top-level ``nfe`` map method -> network evaluations per sample) and writes

* ``report.md`` / ``report.csv``: one row per (task, method, run), one column per metric;
* ``<metric>_vs_nfe.png``: the metric against the number of network evaluations, one
  panel per task, one line per method (runs of a method at several step counts).
"""
from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Optional, Sequence

from . import io

#: preferred column order; other numeric columns follow alphabetically
METRIC_ORDER = ("psnr", "ssim", "lpips", "lpips_vgg", "fid", "kid_mean", "kid_std", "consistency", "residual_rms",
                "coverage90", "mse_ratio")
ID_COLUMNS = ("task", "method", "run", "images", "nfe")
LOWER_IS_BETTER = {"lpips", "lpips_vgg", "fid", "kid_mean", "kid_std", "residual_rms"}


def load_run(run_dir) -> list[dict]:
    """Summary rows of one run, each tagged with ``run`` and (when known) ``nfe``."""
    run_dir = Path(run_dir)
    path = run_dir / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no summary.json: is it the output_dir of a finished "
                                f"`lit-ip predict` run?")
    data = json.loads(path.read_text())
    rows = data.get("summary")
    if not isinstance(rows, list):
        raise ValueError(f"{path} has no 'summary' list of rows")
    nfe = data.get("nfe", {})
    out = []
    for r in rows:
        r = dict(r, run=run_dir.name)
        base = str(r.get("method", "")).split(" (")[0]  # "dps (mean of samples)" -> "dps"
        if r.get("nfe") is None and base in nfe:
            r["nfe"] = nfe[base]
        out.append(r)
    return out


def metric_columns(rows: Sequence[dict]) -> list[str]:
    numeric = {k for r in rows for k, v in r.items()
               if k not in ID_COLUMNS and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return [m for m in METRIC_ORDER if m in numeric] + sorted(numeric - set(METRIC_ORDER))


def build_table(run_dirs: Sequence) -> tuple[list[dict], list[str]]:
    rows = [r for d in run_dirs for r in load_run(d)]
    if not rows:
        raise ValueError("the given runs have no summary rows")
    rows.sort(key=lambda r: (str(r.get("task")), str(r.get("method")), r.get("nfe") or 0, r["run"]))
    return rows, [c for c in ID_COLUMNS if any(c in r for r in rows)] + metric_columns(rows)


def plot_vs_nfe(rows: Sequence[dict], metric: str, path: Path) -> Optional[Path]:
    """Figure of ``metric`` against NFE (log axis); None if no row has both."""
    pts = [r for r in rows if isinstance(r.get(metric), (int, float)) and r.get("nfe")
           and math.isfinite(r[metric])]
    if not pts:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({str(r["task"]) for r in pts})
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        lines = defaultdict(list)
        for r in pts:
            if str(r["task"]) == task:
                lines[str(r["method"])].append((float(r["nfe"]), float(r[metric])))
        for method, xy in sorted(lines.items()):
            xy.sort()
            ax.plot([p[0] for p in xy], [p[1] for p in xy], marker="o", label=method)
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations per sample")
        ax.set_ylabel(metric + (" (lower is better)" if metric in LOWER_IS_BETTER else ""))
        ax.set_title(f"task: {task}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    import io as _io
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return io.write_bytes(path, buf.getvalue())


def report(run_dirs: Sequence, out_dir, metrics: Sequence[str] = ("psnr",)) -> dict:
    rows, columns = build_table(run_dirs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    io.write_csv(out_dir / "report.csv", rows, columns)
    md = io.markdown_table(rows, columns, floatfmt=".4g")
    io.write_text(out_dir / "report.md", f"# Comparison of {len(run_dirs)} run(s)\n\n{md}")
    figures = {}
    for m in metrics:
        fig = plot_vs_nfe(rows, m, out_dir / f"{m}_vs_nfe.png")
        if fig is not None:
            figures[m] = str(fig)
    return {"rows": rows, "columns": columns, "markdown": md, "figures": figures}


def main(argv: Optional[Sequence[str]] = None) -> dict:
    ap = argparse.ArgumentParser(prog="lit-ip report", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="output folders of finished predict runs")
    ap.add_argument("--out", required=True, help="folder for report.md, report.csv and figures")
    ap.add_argument("--metrics", default="psnr,ssim,lpips,fid",
                    help="comma-separated metrics to plot against NFE (default psnr,ssim,lpips,fid)")
    args = ap.parse_args(argv)
    res = report(args.runs, args.out, [m for m in args.metrics.split(",") if m])
    print(res["markdown"])
    missing = [m for m in args.metrics.split(",") if m and m not in res["figures"]]
    if missing:
        print(f"no figure for {missing}: no run reports them together with an nfe")
    return res
