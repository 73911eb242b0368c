"""Wall time of every registered method per *counted* network evaluation, relative to unconditional
sampling, measured in one run.

One small network prior (a diffusers ``UNet2DModel`` on 32x32 RGB, random weights, wrapped by
``NetworkPrior``), one batch, random inpainting (an SVD operator, so every method applies) with
Gaussian noise. Each method of ``lit_ip.methods.registry`` runs with its quick-case settings; the
prior counts forward evaluations (``nfe``) and backward passes (``nfe_backward``) per sample. The
last column is the time per forward evaluation divided by unconditional sampling's: closed-form and
projection methods should be within ~10% of 1, methods with one vector-Jacobian product per
evaluation within the cost of forward + backward (about 3x on a CPU). Rounds interleave the methods
so that drifts of the machine's load hit all of them alike.

    OMP_NUM_THREADS=1 python benchmarks/method_speed.py [--batch 4 --repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from lit_ip.methods.registry import METHODS
from lit_ip.models.unet import DiffusersUNet
from lit_ip.operators.inpainting import RandomInpainting
from lit_ip.operators.noise import GaussianNoise
from lit_ip.priors.network import NetworkPrior
from lit_ip.priors.paths import VPPath
from lit_ip.rng import SampleRNG

SHAPE = (3, 32, 32)
#: cases that cannot run on a network prior (a non-isotropic denoiser is needed)
SKIP = {name for name, case in METHODS.items() if case.analytic_only}


def one_run(method, prior, op, y, batch: int, seed: int) -> tuple[float, dict]:
    rng = SampleRNG.for_indices(range(batch), seed=seed)
    prior.evaluations.reset()
    t0 = time.perf_counter()
    method.sample(prior, op, y, rng, GaussianNoise(0.05))
    return time.perf_counter() - t0, prior.evaluations.per_sample(batch)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default=None, help="comma-separated registry names (Unconditional is always run)")
    ap.add_argument("--num-steps", type=int, default=None, help="override every case's num_steps (amortises setup)")
    ap.add_argument("--stat", choices=("median", "min"), default="median",
                    help="statistic over rounds (min: the least disturbed round, for a loaded machine)")
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
    y = GaussianNoise(0.05).sample(op(x), SampleRNG.for_indices(indices, 0, "measurement"))
    names = [n for n in METHODS if n not in SKIP]
    if args.only:
        keep = {"Unconditional", *args.only.split(",")}
        names = [n for n in names if n in keep]
    overrides = {} if args.num_steps is None else {"num_steps": args.num_steps}
    print(f"UNet2DModel 32x32x3 ({sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters), "
          f"batch {args.batch}, {args.threads} thread(s), {args.stat} of {args.repeats} interleaved rounds; "
          f"skipped (analytic priors only): {sorted(SKIP)}")
    runs = {n: [] for n in names}
    counts = {}
    for r in range(args.repeats + 1):  # round 0 warms up
        for n in names:
            t, counts[n] = one_run(METHODS[n].build(**overrides), prior, op, y, args.batch, r)
            if r:
                runs[n].append(t)
    stat = statistics.median if args.stat == "median" else min
    per_eval = {n: stat(runs[n]) / max(counts[n]["nfe"], 1) for n in names}
    base = per_eval["Unconditional"]
    print("\n| method | nfe | nfe_backward | ms per sample | ms per forward evaluation | x unconditional |")
    print("|---|---|---|---|---|---|")
    for n in names:
        c = counts[n]
        t = stat(runs[n]) / args.batch
        print(f"| {n} | {c['nfe']:g} | {c['nfe_backward']:g} | {1000 * t:.1f} | "
              f"{1000 * per_eval[n] / args.batch:.2f} | {per_eval[n] / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
