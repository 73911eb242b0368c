"""Peak working memory of the particle methods against the particle chunk size, as ratios to
unconditional sampling of the same batch, measured in one run.

One small network prior (a diffusers ``UNet2DModel`` on 32x32 RGB, random weights, as
``benchmarks/method_speed.py``), random inpainting with Gaussian noise, ``--batch`` measurements and
``--particles`` particles each. Every configuration runs in a fresh process; its working memory is
the peak resident set size during ``method.sample`` minus the resident size just before it (CPU:
network activations, autograd graphs and the particle states). With ``particle_chunk = c`` no
network call sees more than ``c`` images, so the network's share should scale with ``c``, not with
``batch x particles``; what remains is the particle states (``batch x particles`` images, a few
copies), which the methods keep whole since resampling picks among all particles of a measurement.

    OMP_NUM_THREADS=1 python benchmarks/particle_memory.py [--batch 2 --particles 16]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

METHODS = ("MCGdiff", "SMCDiff", "FPSSMC", "TDS")


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def child(name: str, particles: int, chunk, batch: int, steps: int) -> dict:
    import gc

    import torch

    from lit_ip.methods.registry import METHODS as REG
    from lit_ip.models.unet import DiffusersUNet
    from lit_ip.operators.inpainting import RandomInpainting
    from lit_ip.operators.noise import GaussianNoise
    from lit_ip.priors.network import NetworkPrior
    from lit_ip.priors.paths import VPPath
    from lit_ip.rng import SampleRNG

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = DiffusersUNet(in_channels=3, sample_size=32, block_out_channels=(32, 64, 64))
    prior = NetworkPrior(net, VPPath(), "eps", (3, 32, 32), (-1.0, 1.0)).eval()
    for p in prior.parameters():
        p.requires_grad_(False)
    idx = list(range(batch))
    op = RandomInpainting(0.5, (3, 32, 32)).bind(idx, seed=0)
    noise = GaussianNoise(0.05)
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = noise.sample(op(x), SampleRNG.for_indices(idx, 0, "measurement"))
    kw = dict(num_steps=steps)
    if name != "Unconditional":
        kw.update(num_particles=particles, particle_chunk=chunk)
    method = REG[name].cls(**kw)
    seen = []
    denoise = prior.denoise
    prior.denoise = lambda xt, t, *a, **k: (seen.append(xt.shape[0]), denoise(xt, t, *a, **k))[1]
    gc.collect()
    before = _rss_kb()
    method.sample(prior, op, y, SampleRNG.for_indices(idx, seed=2), noise)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return dict(method=name, particles=particles, chunk=chunk, mb=max(peak - before, 0) / 1024,
                max_network_batch=max(seen))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--particles", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--chunks", type=int, nargs="+", default=[0, 8, 2], help="0 = all particles at once")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        name, chunk = args.child.split(":")
        print(json.dumps(child(name, args.particles, int(chunk) or None, args.batch, args.steps)))
        return
    base = [sys.executable, __file__, "--batch", str(args.batch), "--particles", str(args.particles),
            "--steps", str(args.steps)]
    run = lambda spec: json.loads(subprocess.run(base + ["--child", spec], capture_output=True, text=True,
                                                 check=True).stdout.splitlines()[-1])
    ref = run("Unconditional:0")
    print(f"batch {args.batch}, {args.particles} particles, 32x32 UNet, {args.steps} steps; "
          f"unconditional: {ref['mb']:.1f} MB\n")
    print("| method | particle_chunk | largest network batch | peak working MB | x unconditional |")
    print("|---|---|---|---|---|")
    print(f"| Unconditional | - | {ref['max_network_batch']} | {ref['mb']:.1f} | 1.00 |")
    for name in METHODS:
        for c in args.chunks:
            r = run(f"{name}:{c}")
            print(f"| {name} | {c or 'all'} | {r['max_network_batch']} | {r['mb']:.1f} | "
                  f"{r['mb'] / max(ref['mb'], 1e-9):.2f} |", flush=True)


if __name__ == "__main__":
    main()
