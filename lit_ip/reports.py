"""``lit-ip report <run_dir> [<run_dir> ...] --out <dir>``: compare finished runs at a glance.

Reads each run's ``summary.json`` (written by the prediction writer: a ``summary`` list of
rows ``{task, method, images, psnr, ssim, ...}``, optionally with ``nfe`` per row or a
top-level ``nfe`` map method -> network evaluations per sample) and writes

* ``report.md`` / ``report.csv``: one row per (task, method, run), one column per metric;
* ``<metric>_vs_nfe.png``: the metric against the number of network evaluations, one
  panel per task (and per prior / data / task setting when runs differ in those) in a grid,
  one line per method and setting: only runs that differ in NFE alone are joined
  (:mod:`lit_ip.report_figures`), and the panel's quality-vs-NFE frontier dashed;
* ``frontier_<metric>.md``: that frontier per task (the best value at each cost);
* ``images_<task>.png``: the same images (keys every run has) in every run and method.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

from . import io
from .report_figures import LOWER_IS_BETTER, image_comparison, panel_frontiers, plot_grid, run_contexts  # noqa: F401

#: preferred column order; other numeric columns follow alphabetically
METRIC_ORDER = ("psnr", "ssim", "lpips", "lpips_vgg", "fid", "kid_mean", "kid_std", "consistency", "residual_rms",
                "coverage90", "mse_ratio")
ID_COLUMNS = ("task", "method", "run", "images", "nfe")


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
    ctx = run_contexts(run_dir, data)
    out = []
    for r in rows:
        r = dict(r, run=run_dir.name)
        base = str(r.get("method", "")).split(" (")[0]  # "dps (mean of samples)" -> "dps"
        if r.get("nfe") is None and base in nfe:
            r["nfe"] = nfe[base]
        # private tags (not written): which rows may share a panel / a line
        r["_context"] = ctx["task"].get(str(r.get("task")), "")
        r["_series"] = f"{r['method']}|{ctx['method'].get(base, '')}|{r['_context']}"
        r["_prior"] = ctx["prior"]
        out.append(r)
    return out


def metric_columns(rows: Sequence[dict]) -> list[str]:
    numeric = {k for r in rows for k, v in r.items()
               if k not in ID_COLUMNS and not k.startswith("_") and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return [m for m in METRIC_ORDER if m in numeric] + sorted(numeric - set(METRIC_ORDER))


def build_table(run_dirs: Sequence) -> tuple[list[dict], list[str]]:
    rows = [r for d in run_dirs for r in load_run(d)]
    if not rows:
        raise ValueError("the given runs have no summary rows")
    rows.sort(key=lambda r: (str(r.get("task")), str(r.get("method")), r.get("nfe") or 0, r["run"]))
    return rows, [c for c in ID_COLUMNS if any(c in r for r in rows)] + metric_columns(rows)


def plot_vs_nfe(rows: Sequence[dict], metric: str, path: Path) -> Optional[Path]:
    """Grid of ``metric`` against NFE (see :func:`lit_ip.report_figures.plot_grid`)."""
    return plot_grid(rows, metric, path)


def report(run_dirs: Sequence, out_dir, metrics: Sequence[str] = ("psnr",), max_images: int = 4) -> dict:
    rows, columns = build_table(run_dirs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    io.write_csv(out_dir / "report.csv", rows, columns)
    md = io.markdown_table(rows, columns, floatfmt=".4g")
    io.write_text(out_dir / "report.md", f"# Comparison of {len(run_dirs)} run(s)\n\n{md}")
    figures, frontiers = {}, {}
    for m in metrics:
        fig = plot_vs_nfe(rows, m, out_dir / f"{m}_vs_nfe.png")
        if fig is not None:
            figures[m] = str(fig)
            frontiers[m] = panel_frontiers(rows, m)
            io.write_text(out_dir / f"frontier_{m}.md",
                          f"# {m} vs NFE frontier per task\n\n"
                          + io.markdown_table(frontiers[m], ["task", "context", "nfe", m, "method", "run"],
                                              floatfmt=".4g"))
    images = image_comparison(run_dirs, out_dir, max_images) if max_images > 0 else {}
    return {"rows": rows, "columns": columns, "markdown": md, "figures": figures, "frontiers": frontiers,
            "images": images}


def main(argv: Optional[Sequence[str]] = None) -> dict:
    ap = argparse.ArgumentParser(prog="lit-ip report", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="output folders of finished predict runs")
    ap.add_argument("--out", required=True, help="folder for report.md, report.csv and figures")
    ap.add_argument("--metrics", default="psnr,ssim,lpips,fid",
                    help="comma-separated metrics to plot against NFE (default psnr,ssim,lpips,fid)")
    ap.add_argument("--images", type=int, default=4,
                    help="images per task in the method comparison grids (0: none)")
    args = ap.parse_args(argv)
    res = report(args.runs, args.out, [m for m in args.metrics.split(",") if m], args.images)
    print(res["markdown"])
    missing = [m for m in args.metrics.split(",") if m and m not in res["figures"]]
    if missing:
        print(f"no figure for {missing}: no run reports them together with an nfe")
    return res
