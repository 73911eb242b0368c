"""Fine-tuning the shipped faces_ddpm on a small new set (60 non-face crops of lfw_subset) against
training the same network from scratch at equal steps.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/finetune_nonfaces.py

Runs ``configs/fit/nonfaces_{finetune_frozen,finetune_full,scratch}.yaml`` (subprocess ``lit-ip fit``,
skipped when the exported prior exists) and measures, with faces_ddpm itself (zero-shot) as a row:

* held-out eps-MSE on the 20 held-out non-faces at 8 fixed VP steps with fixed noise (the
  training's ``val_loss`` recipe), and the same on 20 training non-faces (the gap);
* memorisation of 64 samples (DDPM ancestral, 50 steps) against the 60 training non-faces;
* PiGDM (50 steps) on 8 held-out non-faces: 70% random inpainting (sigma_y 0.025) and
  denoising (sigma_y 0.1), one sample each, PSNR dB, with the pseudo-inverse as baseline.

Writes ``benchmarks/finetune_nonfaces.md`` and ``benchmarks/finetune_nonfaces_samples.png``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("nonfaces_finetune_frozen", "nonfaces_finetune_full", "nonfaces_scratch")
PICK = [0, 2, 5, 7, 10, 12, 15, 17]


def train(name: str) -> tuple[Path, float]:
    d = ROOT / "outputs" / "priors" / name
    t0 = time.time()
    if not (d / "prior.json").is_file():
        env = dict(os.environ, OMP_NUM_THREADS="1")
        log = ROOT / "outputs" / f"{name}.log"
        subprocess.run([sys.executable, "-m", "lit_ip", "fit", "--config", str(ROOT / "configs/fit" / f"{name}.yaml")],
                       check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    return d, time.time() - t0


def eps_mse(prior, x, seed=1000) -> float:
    """Mean eps-MSE (native units) at 8 fixed VP steps with fixed noise."""
    g = torch.Generator().manual_seed(seed)
    levels = torch.linspace(0, 999, 10, dtype=torch.float64)[1:-1].round()
    out = []
    for t in levels:
        eps = torch.randn(x.shape, generator=g)
        a, b = prior.coefficients(t, x)
        x_t = a * x + b * eps
        out.append((prior.eps(x_t, t) - eps).pow(2).mean())
    return float(torch.stack(out).mean())


def main():
    from lit_ip.api import posterior_sample, psnr_ssim, simulate_measurement
    from lit_ip.data.lfw_nonfaces import LFWNonFaces
    from lit_ip.lightning.training import sample_prior, save_grid
    from lit_ip.methods import PiGDM
    from lit_ip.metrics.memorization import memorization_report
    from lit_ip.operators.identity import Identity
    from lit_ip.operators.inpainting import RandomInpainting
    from lit_ip.operators.noise import GaussianNoise
    from lit_ip.priors.pretrained import PretrainedPrior

    train_x = torch.stack([it["image"] for it in LFWNonFaces("train", 32)])
    held = torch.stack([it["image"] for it in LFWNonFaces("heldout", 32)])
    tasks = {"inpaint 70%": (RandomInpainting(0.7, (1, 32, 32)), 0.025), "denoise": (Identity((1, 32, 32)), 0.1)}
    rows, grids = [], []
    idx = list(range(len(PICK)))
    pinv = {}
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=None, help="evaluate only these rows")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "finetune_nonfaces.md"))
    args = ap.parse_args()
    only = args.only
    for label in ("faces_ddpm (zero-shot)",) + RUNS:
        if only and label not in only:
            continue
        where, wall = ("faces_ddpm", 0.0) if label.startswith("faces_ddpm") else train(label)
        prior = PretrainedPrior(where)
        prior.clip_x0 = True            # the faces recipe's default (prior.json), for every row
        with torch.no_grad():
            held_mse, train_mse = eps_mse(prior, held), eps_mse(prior, train_x[:20])
            samples = sample_prior(prior, 64, 50, seed=0).clamp(0, 1)
        rep = memorization_report(samples, train_x, held)
        grids.append(samples[:8])
        psnr = {}
        for task, (family, sy) in tasks.items():
            noise = GaussianNoise(sy)
            y = simulate_measurement(family, held[PICK], noise, seed=0, indices=idx)
            op = family.bind(idx, seed=0) if hasattr(family, "draw_mask") else family
            pinv[task] = float(psnr_ssim(op.pinv(y), held[PICK])[0].mean())
            out = posterior_sample(prior, family, y, PiGDM(num_steps=50), noise, seed=0, indices=idx)[:, 0]
            psnr[task] = float(psnr_ssim(out, held[PICK])[0].mean())
        rows.append((label, wall, held_mse, train_mse, rep, psnr))
        print(label, held_mse, train_mse, rep["nn_ratio_samples_to_heldout"], psnr, flush=True)
        write(rows, grids, pinv, tasks, Path(args.out))         # after every run: an interrupted sweep keeps its rows


def write(rows, grids, pinv, tasks, out: Path):
    from lit_ip.lightning.training import save_grid

    save_grid(torch.cat(grids), out.with_name(out.stem + "_samples.png"), ncol=8)
    lines = ["# Fine-tuning faces_ddpm on 60 non-face crops vs training from scratch (equal steps)", "",
             "Generated by `benchmarks/finetune_nonfaces.py` (configs `configs/fit/nonfaces_*.yaml`: 300 steps, "
             "batch 32, flips + 2 px shifts; lr: encoder-frozen fine-tuning 5e-4, all-weights fine-tuning 2e-4, "
             "scratch 1e-3; EMA 0.99).", "",
             "| prior | held-out eps-MSE | train eps-MSE | NN ratio samples/held-out | copies | "
             + " | ".join(f"PiGDM {t} PSNR" for t in tasks) + " | train wall s |",
             "|---|---|---|---|---|" + "---|" * len(tasks) + "---|"]
    for label, wall, h, t, rep, psnr in rows:
        lines.append(f"| {label} | {h:.4f} | {t:.4f} | {rep['nn_ratio_samples_to_heldout']:.2f} | "
                     f"{int(round(rep['samples']['copy_fraction'] * 64))} / 64 | "
                     + " | ".join(f"{psnr[k]:.2f}" for k in tasks) + f" | {wall:.0f} |")
    lines += ["", "Pseudo-inverse PSNR: " + ", ".join(f"{k} {v:.2f}" for k, v in pinv.items()) + ".",
              "Samples: `benchmarks/finetune_nonfaces_samples.png` (one row of 8 per prior, in table order)."]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
