"""Wall time per step of each posterior sampler relative to unconditional sampling.

One small network prior (a diffusers ``UNet2DModel`` on 32x32 RGB, random weights, wrapped by
``NetworkPrior``), one batch, random inpainting (an SVD operator, so every method applies) with
Gaussian noise. Every method makes one network evaluation per step, so the ratio is the price of
its guidance: DMPS / DDRM / DDNM add spectral arithmetic only (expected within ~10%), DPS / PiGDM
add one backward (at most forward + backward), MomentMatching adds one backward with graph plus
one double backward per CG iteration.

    OMP_NUM_THREADS=1 python benchmarks/method_speed.py [--batch 4 --steps 10 --repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from lit_ip.methods import DDNM, DDRM, DMPS, DPS, DDNMPlus, MomentMatching, PiGDM, Unconditional
from lit_ip.models.unet import DiffusersUNet
from lit_ip.operators.inpainting import RandomInpainting
from lit_ip.operators.noise import GaussianNoise
from lit_ip.priors.network import NetworkPrior
from lit_ip.priors.paths import VPPath
from lit_ip.sampling.rng import SampleRNG

SHAPE = (3, 32, 32)


def methods(steps: int) -> dict:
    return {
        "Unconditional": Unconditional(steps),
        "DMPS": DMPS(steps),
        "DDRM": DDRM(steps),
        "DDNM": DDNM(steps),
        "DDNMPlus": DDNMPlus(steps),
        "DPS": DPS(steps),
        "PiGDM": PiGDM(steps),
        "MomentMatching (cg_iters=1)": MomentMatching(steps, cg_iters=1),
        "MomentMatching (cg_iters=5)": MomentMatching(steps, cg_iters=5),
    }


def seconds(method, prior, op, y, batch: int, repeats: int) -> float:
    runs = []
    for r in range(repeats + 1):  # the first run warms up
        rng = SampleRNG.for_indices(range(batch), seed=r)
        t0 = time.perf_counter()
        method.sample(prior, op, y, rng, GaussianNoise(0.05))
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs[1:])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = DiffusersUNet(in_channels=3, sample_size=32, block_out_channels=(32, 64, 64))
    prior = NetworkPrior(net, VPPath(), "eps", SHAPE, (-1.0, 1.0)).eval()
    for p in prior.parameters():
        p.requires_grad_(False)
    indices = list(range(args.batch))
    op = RandomInpainting(0.5, SHAPE).bind(indices, seed=0)
    x = torch.rand(args.batch, *SHAPE, generator=torch.Generator().manual_seed(1))
    y = GaussianNoise(0.05).sample(op(x), SampleRNG.for_indices(indices, 0, stream=1))
    print(f"UNet2DModel 32x32x3 ({sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters), "
          f"batch {args.batch}, {args.steps} steps, {args.threads} thread(s), median of {args.repeats}")
    base = None
    for name, method in methods(args.steps).items():
        t = seconds(method, prior, op, y, args.batch, args.repeats)
        base = base or t
        print(f"{name:28s} {1000 * t / args.steps:8.1f} ms/step   x{t / base:5.2f}", flush=True)


if __name__ == "__main__":
    main()
