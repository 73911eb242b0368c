"""DPS step size vs. number of steps on the shipped natural-image prior.

DPS (Chung et al. 2023) sets zeta' = 1 ([-1, 1] units, i.e. zeta = 0.5 here) for 1000 steps.
The demo runs DPS with few steps, where that step is too small in total: this script
measures mean PSNR on held-out crops for several zeta at a given number of steps, which
is how the demo's zeta was chosen (and why; see configs/predict/demo.yaml).

    python benchmarks/dps_step_size.py --steps 30
"""
from __future__ import annotations

import argparse

import torch

from lit_ip.api import posterior_sample, psnr_ssim, pseudo_inverse, simulate_measurement
from lit_ip.data.bundled import NaturalCrops
from lit_ip.methods import DPS
from lit_ip.operators.identity import Identity
from lit_ip.operators.inpainting import RandomInpainting
from lit_ip.operators.noise import GaussianNoise
from lit_ip.operators.resize import AveragePoolSR
from lit_ip.priors.pretrained import PretrainedPrior


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--zetas", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--indices", type=int, nargs="+", default=[9, 24, 50, 59])
    args = ap.parse_args()
    prior = PretrainedPrior("natural_ddpm")
    data = NaturalCrops(split="heldout", size=32)
    x = torch.stack([data[i]["image"] for i in args.indices])
    shape = list(prior.image_shape)
    tasks = {"denoise (sigma 0.1)": (Identity(shape), 0.1),
             "sr_4x (sigma 0.025)": (AveragePoolSR(4, shape), 0.025),
             "inpaint_70 (sigma 0.025)": (RandomInpainting(0.7, shape), 0.025)}
    print(f"| task | pinv | " + " | ".join(f"zeta={z}" for z in args.zetas) + " |")
    print("|---" * (len(args.zetas) + 2) + "|")
    for name, (op, sigma) in tasks.items():
        noise = GaussianNoise(sigma)
        y = simulate_measurement(op, x, noise, indices=args.indices)
        row = [psnr_ssim(pseudo_inverse(op, y, indices=args.indices).clamp(0, 1), x)[0].mean()]
        for z in args.zetas:
            xh = posterior_sample(prior, op, y, DPS(args.steps, zeta=z), noise, indices=args.indices)[:, 0]
            row.append(psnr_ssim(xh, x)[0].mean())
        print(f"| {name} | " + " | ".join(f"{float(v):.2f}" for v in row) + " |", flush=True)


if __name__ == "__main__":
    main()
