"""The method x task table on real held-out images -> benchmarks/real_images.md.

Every method with its shipped settings (``configs/method/*.yaml``) on the six tasks of
``configs/predict/demo.yaml`` (faces: five, colorization needs RGB), for the shipped priors

* natural_ddpm, natural_rf on the bundled held-out crops (``lit_ip/assets/heldout_crops``,
  8 RGB 32x32 crops of skimage's chelsea / coffee, never seen in training);
* faces_ddpm, faces_rf on 8 held-out faces (``LFWFaces(split="heldout")``, 1x32x32 grey).

Per (prior, task, method): mean PSNR and SSIM with standard errors over the images, of one
posterior sample and of the posterior mean of ``--samples`` samples (optimisers, RED-diff and
DMPlug, give one output); LPIPS when the AlexNet weights are present; the counted NFE
(``prior.evaluations``, per sample); seconds per image (wall time of the batch / images /
samples, on a shared 2-core machine: compare within one run only); and, for samplers,
calibration: coverage of the per-pixel central 90% interval of the samples and the
MSE ratio ``E||x - x0||^2 / E||mean - x0||^2 * N / (N + 1)`` (2 for an exact sampler; see
:mod:`lit_ip.metrics.calibration`).

Baselines: the pseudo-inverse and the trivial estimate (:mod:`lit_ip.metrics.baselines`: the
measurement where it is an image, the grey image for colorization). A cell is marked ✗ when the
method's estimate (posterior mean for samplers, output for optimisers) does not beat the best
baseline by more than the standard error of the paired per-image PSNR difference.

Incremental: each (prior, task, method) result goes to ``benchmarks/real_images/PRIOR/TASK/METHOD.json``
as soon as it is done, tagged by a hash of everything it depends on (settings, task, images,
samples, seed); a rerun skips results whose hash matches, so an interrupted run resumes, and a
changed method config reruns that method only. ``--write`` rebuilds the table from whatever exists.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/real_images.py            # run (resumes) + write
    python benchmarks/real_images.py --write                                 # table only
    python benchmarks/real_images.py --priors natural_ddpm --methods pigdm,dps
"""
from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import importlib
import json
import math
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
RESULTS, TABLE = ROOT / "real_images", ROOT / "real_images.md"
IMAGES = REPO / "outputs" / "benchmarks" / "real_images"   # reconstructions for the figures (not in git)
FIGURES = ROOT / "real_images" / "figures"
PRIORS = ("natural_ddpm", "faces_ddpm", "natural_rf", "faces_rf")
OPTIMISERS = ("lit_ip.methods.reddiff.REDDiff", "lit_ip.methods.dmplug.DMPlug")
FACE_COUNT = 8
FIGURE_IMAGES = 4


# --- configuration ------------------------------------------------------------------------
def build(spec):
    """Instantiate a ``class_path`` / ``init_args`` spec (nested specs and lists too)."""
    if isinstance(spec, list):
        return [build(s) for s in spec]
    if isinstance(spec, dict) and "class_path" in spec:
        module, name = spec["class_path"].rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
        return cls(**{k: build(v) for k, v in (spec.get("init_args") or {}).items()})
    if isinstance(spec, dict):
        return {k: build(v) for k, v in spec.items()}
    return spec


def method_specs(folder: Path = REPO / "configs" / "method") -> dict[str, dict]:
    """name -> class_path spec, from every ``configs/method/NAME.yaml``."""
    out = {}
    for f in sorted(folder.glob("*.yaml")):
        methods = yaml.safe_load(f.read_text())["model"]["init_args"]["methods"]
        out.update(methods)
    return out


def _with_channels(spec, channels: int):
    spec = copy.deepcopy(spec)

    def walk(d):
        if isinstance(d, dict):
            for k, v in d.items():
                if k == "in_shape":
                    d[k] = [channels, *v[1:]]
                else:
                    walk(v)
        elif isinstance(d, list):
            for v in d:
                walk(v)
    walk(spec)
    return spec


def prior_channels(prior_name: str) -> int:
    """Image channels of a shipped prior's data (faces: grey)."""
    return 1 if prior_name.startswith("faces") else 3


def task_specs(channels: int) -> dict[str, dict]:
    """The demo's tasks (``configs/predict/demo.yaml``), with images of ``channels`` channels."""
    demo = yaml.safe_load((REPO / "configs" / "predict" / "demo.yaml").read_text())
    tasks = demo["model"]["init_args"]["tasks"]
    if channels != 3:
        tasks = {k: v for k, v in tasks.items() if "Colorization" not in v["operator"]["class_path"]}
    return {k: _with_channels(v, channels) for k, v in tasks.items()}


def images(prior_name: str) -> tuple[torch.Tensor, list[str], list[int]]:
    """Ground truth (B, C, H, W), keys and data-set indices (which seed masks and noise)."""
    if prior_name.startswith("natural"):
        from lit_ip.data.folder import ImageFolder
        data = ImageFolder(str(REPO / "lit_ip" / "assets" / "heldout_crops"), channels=3)
        chosen = range(len(data))
    else:
        from lit_ip.data.bundled import LFWFaces
        data = LFWFaces(split="heldout", size=32)
        chosen = [int((k + 0.5) * len(data) / FACE_COUNT) for k in range(FACE_COUNT)]
    items = [data[i] for i in chosen]
    return torch.stack([it["image"] for it in items]), [it["key"] for it in items], [it["index"] for it in items]


#: code every method shares; with the method's own module it enters each result's hash
SHARED_CODE = ("lit_ip/methods/base.py", "lit_ip/methods/likelihood.py", "lit_ip/methods/spectral.py",
               "lit_ip/sampling/steps.py", "lit_ip/sampling/schedules.py", "lit_ip/priors/network.py")


#: edits declared not to change any result of this table (``{"file", "commit", "digest", "reason"}``):
#: a file whose code has ``digest`` counts as its code at ``commit``, so its results stay current
EQUIVALENT_CODE = ROOT / "real_images" / "equivalent_code.json"


def _equivalences() -> list[dict]:
    return json.loads(EQUIVALENT_CODE.read_text()) if EQUIVALENT_CODE.exists() else []


@functools.lru_cache(maxsize=None)
def _code_at(commit: str, rel: str) -> str:
    """The syntax tree of ``rel`` as committed at ``commit`` (read once per run)."""
    import subprocess
    old = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:{rel}"],
                         capture_output=True, text=True, check=True).stdout
    return _syntax(old)


def _code(path: Path) -> str:
    """A source file's syntax tree without docstrings and comments (a doc-only edit keeps results);
    an edit listed in :data:`EQUIVALENT_CODE` counts as the code it was declared equivalent to."""
    if not path.exists():
        return str(path)
    code = _syntax(path.read_text())
    rel = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)
    for eq in _equivalences():
        if eq["file"] == rel and eq["digest"] == digest(code):
            return _code_at(eq["commit"], rel)
    return code


def _syntax(text: str) -> str:
    import ast

    tree = ast.parse(text)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def code_digest(class_path: str) -> str:
    """Hash of the method's module code and the shared sampling code (a fixed method reruns).

    Other ``lit_ip`` modules a method imports (e.g. ``particles.py``, ``ilvr.py``) do not enter it:
    after a behaviour change there, delete that method's results to rerun them."""
    own = REPO / (class_path.rsplit(".", 1)[0].replace(".", "/") + ".py")
    return digest(*[_code(REPO / f) for f in SHARED_CODE], _code(own))


def result_hash(pname, tspec, spec, keys, samples, seed, lpips) -> str:
    """What a result depends on: the method as built (its repr lists every setting, so a
    config spelling out a default is the same method), its code, the task, images, samples, seed."""
    return digest(pname, tspec, repr(build(spec)), keys, samples, seed, lpips, code_digest(spec["class_path"]))


def digest(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- one result --------------------------------------------------------------------------
def _stats(values) -> dict:
    v = torch.tensor([float(x) for x in values], dtype=torch.float64)
    se = float(v.std(unbiased=True) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return {"mean": float(v.mean()), "se": se, "values": [float(x) for x in v]}


def _lpips():
    import warnings

    from lit_ip.metrics.image import default_backbone
    from lit_ip.metrics.lpips import LPIPS, shipped_heads
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backbone, missing = default_backbone(None)
    return (None, missing) if backbone is None else (LPIPS(backbone, str(shipped_heads("alex"))), [])


def evaluate(prior, tname, task_spec, mname, method_spec, x, keys, indices, samples, seed, lpips) -> dict:
    from lit_ip.lightning.sampling_module import PosteriorSamplingModule, Task
    from lit_ip.lightning.writer import image_metrics
    from lit_ip.metrics.calibration import calibration

    n = 1 if method_spec["class_path"] in OPTIMISERS else samples
    task = Task(build(task_spec["operator"]), build(task_spec["noise"]))
    try:
        module = PosteriorSamplingModule(prior, {tname: task}, {mname: build(method_spec)}, num_samples=n, seed=seed)
    except ValueError as e:
        return {"refused": str(e).splitlines()[-1].strip()[:200]}
    t0 = time.perf_counter()
    try:
        out = module.reconstruct({"image": x, "key": keys, "index": torch.tensor(indices)})
    except ValueError as e:  # refused at the inputs check (e.g. DPS-w on an operator without A A^T = cI)
        return {"refused": str(e).split(": ", 1)[-1][:200]}
    seconds = time.perf_counter() - t0
    res = out["tasks"][tname]
    xs = res["recon"][mname]                                   # (B, n, C, H, W)
    estimate = xs.mean(1) if n > 1 else xs[:, 0]
    p1, s1 = image_metrics(xs[:, 0], x)
    pe, se = image_metrics(estimate, x)
    row = {"samples": n, "nfe": res["nfe"][mname], "seconds_per_image": seconds / (len(keys) * n),
           "psnr_sample": _stats(p1), "ssim_sample": _stats(s1), "psnr": _stats(pe), "ssim": _stats(se),
           "finite": bool(torch.isfinite(xs).all())}
    if lpips is not None:
        row["lpips"] = _stats(lpips(estimate.clamp(0, 1), x))
    if n > 1:
        cal = calibration(xs.float().clamp(0, 1), x.float())
        row["coverage90"] = _stats(cal["coverage90"])
        ms, mm = float(cal["mse_samples"].mean()), float(cal["mse_mean"].mean())
        row["mse_ratio"] = ms / mm * (n + 1) / n          # ratio of data-set means (as the writer)
    save_images(xs, estimate, n)
    return row


def save_images(xs, estimate, n) -> None:
    save_images.last = {"sample": xs[:FIGURE_IMAGES, 0].clamp(0, 1), "mean": estimate[:FIGURE_IMAGES].clamp(0, 1),
                        "std": xs[:FIGURE_IMAGES].std(1) if n > 1 else None}


def baselines(tname, task_spec, x, indices, seed) -> dict:
    from lit_ip.api import pseudo_inverse, simulate_measurement
    from lit_ip.lightning.writer import image_metrics
    from lit_ip.metrics.baselines import trivial_estimate

    op, noise = build(task_spec["operator"]), build(task_spec["noise"])
    y = simulate_measurement(op, x, noise, seed=seed, indices=indices)
    bound = op.bind(indices, seed)
    out, shown = {}, {}
    for name, est in (("pinv", pseudo_inverse(op, y, seed=seed, indices=indices)),
                      ("trivial", trivial_estimate(bound, y, x.shape[1:]))):
        if est is not None:
            p, s = image_metrics(est, x)
            out[name] = {"psnr": _stats(p), "ssim": _stats(s)}
            shown[name] = est[:FIGURE_IMAGES].clamp(0, 1)
    shown["measurement"] = y[:FIGURE_IMAGES].clamp(0, 1) if y.dim() == 4 else None
    return out, shown


# --- the run ------------------------------------------------------------------------------
def run(args) -> None:
    from lit_ip.priors.pretrained import PretrainedPrior

    methods = method_specs()
    chosen = [m for m in (args.methods.split(",") if args.methods else methods)]
    lpips, missing = _lpips()
    for pname in args.priors.split(","):
        prior = PretrainedPrior(pname)
        x, keys, indices = images(pname)
        samples = args.samples
        for tname, tspec in task_specs(x.shape[1]).items():
            base_path = RESULTS / pname / tname / "_baselines.json"
            base, shown = baselines(tname, tspec, x, indices, args.seed)
            write_json(base_path, {"keys": keys, **base})
            save_tensors(pname, tname, "_baselines", {"gt": x[:FIGURE_IMAGES], **shown})
            for mname in chosen:
                spec = methods[mname]
                h = result_hash(pname, tspec, spec, keys, samples, args.seed, bool(lpips))
                path = RESULTS / pname / tname / f"{mname}.json"
                if path.exists() and json.loads(path.read_text()).get("hash") == h:
                    continue
                t0 = time.time()
                row = evaluate(prior, tname, tspec, mname, spec, x, keys, indices, samples, args.seed, lpips)
                row.update(hash=h, spec=spec, keys=keys, requested_samples=samples, seed=args.seed,
                           lpips_missing=missing if lpips is None else [])
                write_json(path, row)
                if "refused" not in row:
                    save_tensors(pname, tname, mname, save_images.last)
                print(f"{pname} {tname} {mname}: " + (row.get("refused") or
                      f"{row['psnr']['mean']:.2f} dB (sample {row['psnr_sample']['mean']:.2f}), "
                      f"{time.time() - t0:.0f} s"), flush=True)
                write_table()


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def save_tensors(pname, tname, name, tensors) -> None:
    path = IMAGES / pname / tname / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v for k, v in tensors.items() if v is not None}, path)


# --- the table ----------------------------------------------------------------------------
def load(pname) -> dict:
    """Results of one prior that are current (same method, code, task, images as now); a result
    of a changed method is left out (shown as not run) until it is rerun."""
    out, methods = {}, method_specs()
    channels = prior_channels(pname)
    for tdir in sorted((RESULTS / pname).glob("*")) if (RESULTS / pname).exists() else []:
        if tdir.name == "figures" or not tdir.is_dir():
            continue
        tspecs = task_specs(channels)
        out[tdir.name] = {}
        for f in sorted(tdir.glob("*.json")):
            row = json.loads(f.read_text())
            if not f.stem.startswith("_"):
                if f.stem not in methods or tdir.name not in tspecs:
                    continue
                want = result_hash(pname, tspecs[tdir.name], methods[f.stem], row.get("keys"),
                                   row.get("requested_samples", 2), row.get("seed", 0),
                                   not row.get("lpips_missing"))
                if row.get("hash") != want:
                    continue
            out[tdir.name][f.stem] = row
    return out


def beats(row: dict, base: dict) -> bool:
    """Paired per-image PSNR difference to the best baseline > its standard error."""
    d = torch.tensor(row["psnr"]["values"]) - torch.tensor(base["psnr"]["values"])
    return bool(d.mean() > d.std(unbiased=True) / math.sqrt(len(d)))


def best_base(results: dict) -> tuple[str, dict]:
    cands = {k: v for k, v in results.get("_baselines", {}).items() if k != "keys"}
    name = max(cands, key=lambda k: cands[k]["psnr"]["mean"])
    return name, cands[name]


def fmt(s: dict, digits=2) -> str:
    return f"{s['mean']:.{digits}f} ± {s['se']:.{digits}f}"


def prior_tables(pname: str, res: dict, order: list[str]) -> tuple[list[str], dict]:
    tasks = list(task_specs(prior_channels(pname)))   # every task, run or not
    res = {t: res.get(t, {}) for t in tasks}
    methods = list(order)
    head = "| method | " + " | ".join(tasks) + " |\n|---|" + "---|" * len(tasks)
    fails, lines = {}, []

    def cell(t, m, fn):
        r = res[t].get(m)
        if r is None:
            return "…"
        if "refused" in r:
            return "refused"
        return fn(r)

    def estimate(t, m):
        def f(r):
            if "_baselines" not in res[t]:
                return fmt(r["psnr"])
            name, base = best_base(res[t])
            ok = beats(r, base)
            if not ok:
                fails.setdefault(m, []).append(t)
            return fmt(r["psnr"]) + ("" if ok else " ✗")
        return cell(t, m, f)

    lines += [f"### {pname}: PSNR (dB) of the estimate (posterior mean; optimisers: output) ± s.e.", "", head]
    for b in ("pinv", "trivial"):
        vals = [fmt(res[t]["_baselines"][b]["psnr"]) if b in res[t].get("_baselines", {}) else
                ("-" if res[t].get("_baselines") else "…") for t in tasks]
        lines.append(f"| *{'pseudo-inverse' if b == 'pinv' else 'trivial (y / grey)'}* | " + " | ".join(vals) + " |")
    lines += [f"| {m} | " + " | ".join(estimate(t, m) for t in tasks) + " |" for m in methods]
    tables = [
        ("PSNR (dB) of one posterior sample ± s.e.", lambda r: fmt(r["psnr_sample"])),
        ("SSIM of the estimate ± s.e.", lambda r: fmt(r["ssim"], 3)),
        ("calibration: coverage of the 90% per-pixel interval / MSE ratio (exact sampler: see note)",
         lambda r: f"{r['coverage90']['mean']:.2f} / {r['mse_ratio']:.2f}" if "coverage90" in r else "- (1 output)"),
        ("counted NFE per sample (forward + backward) / seconds per posterior sample",
         lambda r: f"{r['nfe']['nfe']:.0f}+{r['nfe']['nfe_backward']:.0f} / {r['seconds_per_image']:.2f}"),
    ]
    if any("lpips" in r for t in tasks for r in res[t].values() if isinstance(r, dict)):
        tables.insert(2, ("LPIPS of the estimate ± s.e.", lambda r: fmt(r["lpips"], 3) if "lpips" in r else "-"))
    for title, fn in tables:
        lines += ["", f"### {pname}: {title}", "", head]
        lines += [f"| {m} | " + " | ".join(cell(t, m, fn) for t in tasks) + " |" for m in methods]
    return lines, fails


def write_table() -> None:
    from lit_ip.metrics.calibration import reference_coverage

    order = list(method_specs())
    out = ["# Every method on real held-out images", "",
           "Written by `benchmarks/real_images.py` (see its docstring for the protocol); "
           "rebuild with `python benchmarks/real_images.py --write`. Cells marked … are not run yet.", "",
           "✗ = the estimate does not beat the best baseline (higher of pseudo-inverse and trivial "
           "estimate) by more than the standard error of the paired per-image PSNR difference.", ""]
    for eq in _equivalences():
        out += [f"Declared behaviour-neutral: `{eq['file']}` as edited after {eq['commit']} ({eq['reason']}); "
                f"results computed before the edit are kept.", ""]
    headline = []
    for pname in PRIORS:
        res = load(pname)
        if not res:
            out += [f"## {pname}", "", "not run yet", ""]
            continue
        any_row = next((r for t in res.values() for k, r in t.items() if not k.startswith("_") and "samples" in r), None)
        n = max((r.get("samples", 1) for t in res.values() for k, r in t.items() if not k.startswith("_")), default=1)
        keys = next(iter(res.values())).get("_baselines", {}).get("keys", [])
        lines, fails = prior_tables(pname, res, order)
        done = sum(1 for t in res.values() for k in t if not k.startswith("_"))
        ref = f"{reference_coverage(n):.2f}" if n > 1 else "-"
        out += [f"## {pname}", "", f"{len(keys)} images ({', '.join(keys)}); {n} posterior samples per image "
                f"(optimisers 1); an exact sampler's expected coverage90 with {n} samples is "
                f"{ref} and its MSE ratio 2. {done} (task, method) results.", ""]
        if any_row and any_row.get("lpips_missing"):
            out += ["LPIPS left out: " + " ".join(any_row["lpips_missing"])[:300], ""]
        out += lines + [""]
        if fails:
            out += ["Not beating the best baseline: " + "; ".join(f"{m} ({', '.join(t)})" for m, t in fails.items()), ""]
        if list(FIGURES.glob(f"{pname}_*.png")):
            out += [f"Figures: `benchmarks/real_images/figures/{pname}_TASK.png`.", ""]
        headline.append((pname, fails, done))
    tmp = TABLE.with_suffix(f".{__import__('os').getpid()}.tmp")  # two runs may write at once
    tmp.write_text("\n".join(out) + "\n")
    tmp.replace(TABLE)
    return headline


def write_figures() -> None:
    """One figure per (prior, task): ground truth, measurement, baselines, then per method the
    posterior mean, one sample and (samplers) the std map of the first images."""
    from lit_ip import io
    from lit_ip.lightning.figures import FigureRow, image_grid

    for pname in PRIORS:
        current = load(pname)  # only results of the methods as configured now
        for tdir in sorted((IMAGES / pname).glob("*")):
            base = torch.load(tdir / "_baselines.pt", weights_only=True)
            k = base["gt"].shape[0]
            cols = [f"{i}" for i in range(k)]
            rows = [FigureRow("ground truth", list(base["gt"]))]
            if base.get("measurement") is not None:
                rows.append(FigureRow("measurement", list(base["measurement"])))
            for b in ("pinv", "trivial"):
                if b in base:
                    rows.append(FigureRow({"pinv": "pseudo-inverse", "trivial": "trivial (y / grey)"}[b], list(base[b])))
            for m in method_specs():
                f = tdir / f"{m}.pt"
                if not f.exists() or m not in current.get(tdir.name, {}):
                    continue
                t = torch.load(f, weights_only=True)
                rows.append(FigureRow(f"{m}: mean" if "std" in t else m, list(t["mean"])))
                if "std" in t:
                    rows.append(FigureRow(f"{m}: sample", list(t["sample"])))
                    rows.append(FigureRow(f"{m}: 2 std", list((2 * t["std"]).clamp(0, 1))))
            FIGURES.mkdir(parents=True, exist_ok=True)
            io.write_bytes(FIGURES / f"{pname}_{tdir.name}.png", image_grid(rows, cols, title=f"{pname}: {tdir.name}"))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--priors", default=",".join(PRIORS))
    ap.add_argument("--methods", default="", help="comma-separated names of configs/method/*.yaml (default all)")
    ap.add_argument("--samples", type=int, default=2, help="posterior samples per image (samplers)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", action="store_true", help="only rebuild the table and figures from results")
    args = ap.parse_args(argv)
    if not args.write:
        run(args)
    write_table()
    write_figures()


if __name__ == "__main__":
    main()
