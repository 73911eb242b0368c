"""Strip outputs from Jupyter notebooks before committing them.

    python tools/strip_notebooks.py                  # strip notebooks/*.ipynb in place
    python tools/strip_notebooks.py a.ipynb b.ipynb  # given files
    python tools/strip_notebooks.py --check          # list notebooks that still hold outputs; exit 1 if any

Removes cell outputs, execution counts and per-run metadata (execution timings, widget
state, interpreter version), so the committed files change only when their code or text
does. The notebooks are executed by ``tests/test_notebooks.py`` instead.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
#: per-cell metadata written by a run (kept: tags and anything a human set, e.g. "slideshow")
RUN_CELL_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")
#: notebook metadata kept (the rest, e.g. widget state, is per run)
KEEP_NOTEBOOK_METADATA = ("kernelspec", "language_info")


def problems(nb) -> list[str]:
    """What ``strip`` would remove, one line per cell (empty if the notebook is clean)."""
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            if cell.get("outputs"):
                out.append(f"cell {i}: {len(cell.outputs)} outputs")
            if cell.get("execution_count") is not None:
                out.append(f"cell {i}: execution count {cell.execution_count}")
        stale = [k for k in RUN_CELL_METADATA if k in cell.get("metadata", {})]
        if stale:
            out.append(f"cell {i}: run metadata {stale}")
    extra = [k for k in nb.metadata if k not in KEEP_NOTEBOOK_METADATA]
    if extra:
        out.append(f"notebook metadata {extra}")
    info = nb.metadata.get("language_info", {})
    if set(info) - {"name"}:
        out.append(f"language_info {sorted(set(info) - {'name'})}")
    return out


def strip(nb) -> None:
    """Remove outputs and per-run metadata from ``nb`` in place."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for k in RUN_CELL_METADATA:
            cell.get("metadata", {}).pop(k, None)
    for k in [k for k in nb.metadata if k not in KEEP_NOTEBOOK_METADATA]:
        del nb.metadata[k]
    if "language_info" in nb.metadata:
        nb.metadata["language_info"] = {"name": nb.metadata["language_info"].get("name", "python")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if a notebook holds outputs")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(NOTEBOOKS.glob("*.ipynb"))
    dirty = 0
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        found = problems(nb)
        if not found:
            continue
        dirty += 1
        if args.check:
            print(f"{path}: " + "; ".join(found))
        else:
            strip(nb)
            nbformat.validate(nb)
            nbformat.write(nb, str(path))
            print(f"stripped {path}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
