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

from lit_ip.methods import Problem, StepState
from lit_ip.methods import DDNM, DDRM, DMPS, DPS, DDNMPlus, MomentMatching, PiGDM, Unconditional
from lit_ip.models.unet import DiffusersUNet
from lit_ip.operators.inpainting import RandomInpainting
from lit_ip.operators.noise import GaussianNoise
from lit_ip.priors.network import NetworkPrior
from lit_ip.priors.paths import VPPath
from lit_ip.rng import SampleRNG

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


def one_run(method, prior, op, y, batch: int, seed: int) -> float:
    rng = SampleRNG.for_indices(range(batch), seed=seed)
    t0 = time.perf_counter()
    method.sample(prior, op, y, rng, GaussianNoise(0.05))
    return time.perf_counter() - t0


def guidance_ms(method, prior, op, y, batch: int, repeats: int = 50) -> float:
    """Median time of one ``correct`` + ``step`` with the network output held fixed: the method's
    own arithmetic, insensitive to machine load (Jacobian-free methods only)."""
    x = y.new_zeros(batch, *SHAPE) + 0.5
    t, t_next = prior.path.timesteps(10)[4:6]
    a, b = prior.coefficients(t, x)
    a_n, b_n = prior.coefficients(t_next, x)
    rng = SampleRNG.for_indices(range(batch))
    with torch.no_grad():
        x0 = prior.denoise(x, t)
        p = Problem(prior, op, y, GaussianNoise(0.05))
        p.extra = method.prepare(p)
        s = StepState(x, x0, t, a, b, a_n, b_n, 4)
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            method.step(x, method.correct(s, p)[0], s, p, rng)
            runs.append(time.perf_counter() - t0)
    return 1000 * statistics.median(runs)


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
          f"batch {args.batch}, {args.steps} steps, {args.threads} thread(s), median of {args.repeats} interleaved rounds")
    runs = {name: [] for name in methods(args.steps)}
    for r in range(args.repeats + 1):  # rounds interleave the methods (load drifts); round 0 warms up
        for name, method in methods(args.steps).items():
            t = one_run(method, prior, op, y, args.batch, r)
            if r:
                runs[name].append(t)
    base = statistics.median(runs["Unconditional"])
    for name, ts in runs.items():
        t = statistics.median(ts)
        print(f"{name:28s} {1000 * t / args.steps:8.1f} ms/step   x{t / base:5.2f}", flush=True)
    with torch.no_grad():
        t_net = statistics.median(
            [one_run(Unconditional(1), prior, op, y, args.batch, 0) for _ in range(5)])
    print(f"\nguidance arithmetic per step, network output fixed (one network call: {1000 * t_net:.1f} ms):")
    for name, method in methods(args.steps).items():
        if not getattr(method, "needs_grad", False):
            ms = guidance_ms(method, prior, op, y, args.batch)
            print(f"{name:28s} {ms:8.2f} ms/step   ({100 * ms / (1000 * t_net):.1f}% of a network call)")


if __name__ == "__main__":
    main()
