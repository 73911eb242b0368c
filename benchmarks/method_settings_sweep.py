"""Choose shipped settings of methods on TRAINING crops, against the best trivial estimate.

Runs each candidate setting of each method on the six tasks of ``configs/predict/demo.yaml``
with the shipped ``natural_ddpm`` prior, on a few crops of ``NaturalCrops(split="train")`` (never
the held-out photographs), and prints mean PSNR per task next to the best trivial estimate: the
measurement itself where it is an image (denoising), the pseudo-inverse ``A^+ y``, and the grey
image (luminance copied to every channel) for colorization. The shipped setting of a method is
the candidate that beats the trivial estimate on most tasks, then has the highest mean PSNR.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/method_settings_sweep.py --methods DDS,MPGD \
        [--crops 4] [--out benchmarks/method_settings_sweep.md]
"""
from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

import torch
import yaml

from lit_ip.api import posterior_sample, pseudo_inverse, psnr_ssim, simulate_measurement
from lit_ip.data.bundled import NaturalCrops
from lit_ip.priors.pretrained import PretrainedPrior

REPO = Path(__file__).resolve().parents[1]

#: VE levels from 1 (not the path's top, ~80): a small Langevin budget cannot anneal from there
LOGSNR_1 = {"class_path": "lit_ip.sampling.schedules.LogSNRUniform", "init_args": {"sigma_max": 1.0}}

#: candidate settings per method (class path, list of init_args); ~30 network evaluations each
CANDIDATES = {
    # round 1 (all methods, two settings each) is in benchmarks/method_settings_sweep.md; these are round 2
    "ILVR": ("lit_ip.methods.ilvr.ILVR", [dict(num_steps=30, svd_cutoff=0.05), dict(num_steps=30, svd_cutoff=0.05, cond_fraction=0.9)]),
    "RePaint": ("lit_ip.methods.repaint.RePaint", [dict(num_steps=10, jump=3, repeats=3, svd_cutoff=0.05),
                                                   dict(num_steps=12, jump=4, repeats=3, svd_cutoff=0.05)]),
    "MCG": ("lit_ip.methods.mcg.MCG", [dict(num_steps=30, zeta=ZETA, svd_cutoff=0.05) for ZETA in (0.5, 2.0)]),
    "DDS": ("lit_ip.methods.dds.DDS", [dict(num_steps=30, rho=0.02), dict(num_steps=30, rho=0.05, eta=1.0)]),
    # round 3: the step normalised by ||A||^2 (round 2: lr 0.1 / 0.25 unnormalised)
    "MPGD": ("lit_ip.methods.mpgd.MPGD", [dict(num_steps=30, lr=0.25, normalize=True),
                                          dict(num_steps=30, lr=0.5, normalize=True)]),
    "DSG": ("lit_ip.methods.dsg.DSG", [dict(num_steps=30, w=0.5), dict(num_steps=30, w=0.8)]),
    # round 3: the step normalised by ||A||^2 (round 2: lam 1.0 eta 0.85 / lam 2.0 unnormalised)
    "ScoreSDE": ("lit_ip.methods.score_sde.ScoreSDE", [dict(num_steps=30, lam=1.0, normalize=True),
                                                      dict(num_steps=30, lam=0.5, normalize=True)]),
    "ScoreALD": ("lit_ip.methods.score_ald.ScoreALD", [dict(num_steps=10, langevin_steps=3, delta=0.5, schedule=LOGSNR_1),
                                                       dict(num_steps=15, langevin_steps=2, delta=0.7, schedule=LOGSNR_1)]),
    "SNIPS": ("lit_ip.methods.snips.SNIPS", [dict(num_steps=10, langevin_steps=3, delta=0.5, schedule=LOGSNR_1),
                                             dict(num_steps=15, langevin_steps=2, delta=0.7, schedule=LOGSNR_1)]),
    "KadkhodaieSimoncelli": ("lit_ip.methods.kadkhodaie.KadkhodaieSimoncelli",
                             [dict(num_steps=40, h0=0.1, beta=0.3, sigma_min=0.02, svd_cutoff=0.05),
                              dict(num_steps=40, h0=0.2, beta=0.2, sigma_min=0.02, svd_cutoff=0.05)]),
    "OTODE": ("lit_ip.methods.otode.OTODE", [dict(num_steps=30, t_start=0.5, svd_cutoff=0.05),
                                             dict(num_steps=30, t_start=0.4, svd_cutoff=0.05)]),
    "DDNMTimeTravel": ("lit_ip.methods.ddnm_timetravel.DDNMTimeTravel",
                       [dict(num_steps=10, jump=3, repeats=3, svd_cutoff=0.05)]),
    # round 4 (issue-13 samplers with step parameters; the first of each is the earlier CPU-sized setting)
    "PMCPnP": ("lit_ip.methods.pmc.PMCPnP", [dict(num_steps=100, steps_per_level=2, step_size=0.5, sigma_max=1.0),
                                             dict(num_steps=100, steps_per_level=2, step_size=1.5, sigma_max=1.0),
                                             dict(num_steps=100, steps_per_level=2, step_size=1.5, sigma_max=0.3)]),
    "PMCRED": ("lit_ip.methods.pmc.PMCRED", [dict(num_steps=100, steps_per_level=2, step_size=0.5, sigma_max=1.0),
                                             dict(num_steps=100, steps_per_level=2, step_size=1.5, sigma_max=0.3)]),
    "PnPDM": ("lit_ip.methods.pnpdm.PnPDM", [dict(num_steps=10, iterations=30, rho_max=1.0, rho_min=0.02, decay=0.9),
                                             dict(num_steps=10, iterations=30, rho_max=0.5, rho_min=0.02, decay=0.85)]),
    # round 4b: PMC around the best of round 4 (RED's drift is unstable at step_size 1.5 below sigma_y)
    "PMCPnP-4b": ("lit_ip.methods.pmc.PMCPnP", [dict(num_steps=100, steps_per_level=2, step_size=1.5, sigma_max=0.15),
                                                dict(num_steps=100, steps_per_level=2, step_size=1.9, sigma_max=0.3)]),
    "PMCRED-4b": ("lit_ip.methods.pmc.PMCRED", [dict(num_steps=100, steps_per_level=2, step_size=0.9, sigma_max=0.3)]),
    # round 5: SMCDiff's svd_cutoff (it only changes deblurring: run with --tasks deblur)
    "SMCDiff": ("lit_ip.methods.smcdiff.SMCDiff", [dict(num_steps=100, num_particles=8, particle_chunk=4, svd_cutoff=c)
                                                   for c in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4)]),
    # round 6: PiGDM's guidance form on the flow prior (run with --prior natural_rf; "auto" = "score" there)
    "PiGDM-form": ("lit_ip.methods.pigdm.PiGDM", [dict(num_steps=25, eta=1.0, form=f) for f in ("score", "eq10")]),
    # round 7: DPS's zeta on both natural priors (run with --prior natural_ddpm and --prior natural_rf)
    "DPS-zeta": ("lit_ip.methods.dps.DPS", [dict(num_steps=30, zeta=z) for z in (1.0, 2.0)]),
    # reference: an existing method at the demo's settings
    "DDNMPlus": ("lit_ip.methods.ddnm.DDNMPlus", [dict(num_steps=25, svd_cutoff=0.05)]),
}


def instantiate(spec: dict):
    module, _, name = spec["class_path"].rpartition(".")
    args = {k: instantiate(v) if isinstance(v, dict) and "class_path" in v else v
            for k, v in spec.get("init_args", {}).items()}
    return getattr(importlib.import_module(module), name)(**args)


def tasks() -> dict:
    cfg = yaml.safe_load((REPO / "configs/predict/demo.yaml").read_text())
    return {name: (instantiate(t["operator"]), instantiate(t["noise"]))
            for name, t in cfg["model"]["init_args"]["tasks"].items()}


def trivial(name, op, y, x, idx) -> tuple[str, float]:
    """The best trivial estimate's name and mean PSNR."""
    options = {"pinv": pseudo_inverse(op, y, indices=idx)}
    if y.shape == x.shape:
        options["measurement"] = y
    if name == "colorize":
        options["grey"] = y.expand_as(x)
    scores = {k: float(psnr_ssim(v.clamp(0, 1), x)[0].mean()) for k, v in options.items()}
    best = max(scores, key=scores.get)
    return best, scores[best]


def shipped_spec(class_path: str) -> dict:
    """The ``configs/method/*.yaml`` entry whose class is ``class_path`` (file names are snake_case)."""
    for f in sorted((REPO / "configs" / "method").glob("*.yaml")):
        for spec in yaml.safe_load(f.read_text())["model"]["init_args"]["methods"].values():
            if spec["class_path"] == class_path:
                return spec
    raise ValueError(f"no configs/method/*.yaml ships {class_path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(CANDIDATES))
    ap.add_argument("--crops", type=int, default=4)
    ap.add_argument("--out", default=None, help="append JSON lines of results here")
    ap.add_argument("--prior", default="natural_ddpm", help="shipped prior name (natural_rf: the flow prior)")
    ap.add_argument("--shipped", action="store_true", help="run the settings of configs/method/NAME.yaml instead")
    ap.add_argument("--tasks", default=None, help="comma-separated demo tasks (default all six)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = NaturalCrops(split="train", size=32)
    idx = [int(i) for i in torch.linspace(0, len(data) - 1, args.crops).round().tolist()]
    x = torch.stack([data[i]["image"] for i in idx])
    prior = PretrainedPrior(args.prior).eval()
    for p in prior.parameters():
        p.requires_grad_(False)
    problems = {}
    for name, (op, noise) in tasks().items():
        if args.tasks and name not in args.tasks.split(","):
            continue
        y = simulate_measurement(op, x, noise, indices=idx)
        problems[name] = (op, noise, y, trivial(name, op, y, x, idx))
    print("trivial:", {k: (v[3][0], round(v[3][1], 2)) for k, v in problems.items()}, flush=True)
    for m in args.methods.split(","):
        path, settings = CANDIDATES[m]
        if args.shipped:
            spec = shipped_spec(path)
            path, settings = spec["class_path"], [spec["init_args"]]
        for s in settings:
            row, t0 = {}, time.time()
            for name, (op, noise, y, (tname, tpsnr)) in problems.items():
                method = instantiate({"class_path": path, "init_args": s})
                try:
                    out = posterior_sample(prior, op, y, method, noise, indices=idx)[:, 0]
                    row[name] = round(float(psnr_ssim(out, x)[0].mean()), 2)
                except ValueError as err:       # refused (e.g. an operator property)
                    row[name] = f"refused: {str(err)[:60]}"
            wins = sum(1 for k, v in row.items() if isinstance(v, float) and v > problems[k][3][1])
            rec = dict(method=m, settings=s, psnr=row, wins=wins, seconds=round(time.time() - t0))
            print(json.dumps(rec), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
