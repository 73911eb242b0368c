"""Rewrite the held-out paragraph at the end of each method module's docstring from the results of
``benchmarks/real_images.py`` (and the N-sample reruns of ``benchmarks/real_images_samples.py``), so
the docstrings say where each method misses the bar, with the measurement, on every shipped prior.

    python tools/heldout_lines.py            # rewrite lit_ip/methods/*.py in place
    python tools/heldout_lines.py --check    # exit 1 if a paragraph is out of date

The paragraph starts at the line beginning ``Held-out table (`` and runs to the docstring's end;
docstring edits do not change a result's hash (``real_images.code_digest`` strips them).
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import real_images as ri  # noqa: E402
import real_images_samples as rs  # noqa: E402

HEAD = ("Held-out table (``benchmarks/real_images.md``, 2 samples; causes: README.md, Every method on "
        "real images; more samples: ``benchmarks/real_images_samples.md``).")
BASE_NAMES = {"pinv": "pinv", "trivial": "y"}


def more_samples() -> dict:
    """(prior, task, method) -> the current N-sample result."""
    return {(prior, r["task"], r["method"]): r for prior, r in rs.current()}


def sentence(mname: str, tables: dict, extra: dict) -> str:
    misses, clean, missing = [], [], []
    for prior, res in tables.items():
        tasks = list(ri.task_specs(ri.prior_channels(prior)))
        bad, run = [], 0
        for t in tasks:
            row = res.get(t, {}).get(mname)
            if row is None or "_baselines" not in res.get(t, {}):
                missing.append(f"{prior} {t}")
                continue
            if "refused" in row:
                bad.append(f"{t} refused")
                continue
            run += 1
            bname, base = ri.best_base(res[t])
            if not ri.beats(row, base):
                label = "grey" if t == "colorize" and bname == "trivial" else BASE_NAMES[bname]
                text = f"{t} {row['psnr']['mean']:.2f} vs {label} {base['psnr']['mean']:.2f}"
                more = extra.get((prior, t, mname))
                if more:
                    verdict = "beats it" if ri.beats(more, base) else "still does not"
                    text += f" ({more['samples']} samples: {more['psnr']['mean']:.2f}, {verdict})"
                bad.append(text)
        if bad:
            misses.append(f"{prior} " + ", ".join(bad))
        elif run:
            clean.append(f"{prior} ({run} of {len(tasks)} tasks)")
    parts = []
    if misses:
        parts.append(f"``{mname}`` does not beat the best baseline by more than the standard error on "
                     + "; ".join(misses) + ".")
    if clean:
        parts.append(("It beats it on every task run with " if misses else
                      f"``{mname}`` beats the best baseline on every task run with ") + ", ".join(clean) + ".")
    if missing:
        parts.append("Not run yet: " + ", ".join(missing) + ".")
    return " ".join(parts)


def paragraphs() -> dict[Path, str]:
    methods, extra = ri.method_specs(), more_samples()
    tables = {p: ri.load(p) for p in ri.PRIORS}
    by_file: dict[Path, list[str]] = {}
    for mname, spec in methods.items():
        module = spec["class_path"].rsplit(".", 1)[0]
        path = REPO / (module.replace(".", "/") + ".py")
        by_file.setdefault(path, []).append(sentence(mname, tables, extra))
    return {p: textwrap.fill(" ".join([HEAD, *s]), 100, break_on_hyphens=False) for p, s in by_file.items()}


def rewrite(path: Path, paragraph: str) -> str:
    """The module text with its docstring's held-out paragraph replaced (or appended)."""
    text = path.read_text()
    end = text.index('"""', 3)
    start = text.find("\nHeld-out table (", 0, end)
    body = text[:end].rstrip("\n") + "\n" if start < 0 else text[:start]
    return body + "\n" + paragraph + "\n" + text[end:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    stale = []
    for path, para in sorted(paragraphs().items()):
        new = rewrite(path, para)
        if new != path.read_text():
            stale.append(path.relative_to(REPO))
            if not args.check:
                path.write_text(new)
    print(("out of date: " if args.check else "rewrote: ") + (", ".join(map(str, stale)) or "none"))
    sys.exit(1 if args.check and stale else 0)


if __name__ == "__main__":
    main()
