"""Is over-confidence the methods' or the priors'? -> benchmarks/calibration.md.

Part 1 (known answer). A Gaussian prior ``N(m, C)`` on 3x8x8 images
(:class:`~lit_ip.priors.synthetic.RandomGaussianPrior`, seed 0, DDPM path): its denoiser is
exact, so any miscalibration here is the *method's*. Ground truths are drawn from the prior,
measured by the demo's kinds of task at this size (denoise sigma 0.1, 70% random inpainting and
2x average-pool SR with sigma 0.025), and every shipped method (``configs/method/*.yaml``)
draws N posterior samples per measurement. Reference: N exact posterior samples
(``GaussianPrior.posterior(A, y, sigma).sample``). Reported per (task, method): the MSE ratio
``mean_i ||x_i - x0||^2 / ||mean - x0||^2 * N / (N + 1)`` (2 for an exact sampler, 1 for a
sampler collapsed to its mean) and the coverage of the per-pixel central 90% interval of the N
samples (an exact sampler's expected value with N samples is printed: below 0.9 for small N).

Part 2 (network priors) is the real-image table (``benchmarks/real_images.md``): every method
on the same held-out images and the same measurements, so a method that is calibrated in part 1
but over-confident there points at the prior (or at the method's approximation of a network's
posterior), and methods that disagree on the same images point at the methods.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/calibration.py [--samples 8 --images 16]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from real_images import OPTIMISERS, build, method_specs  # noqa: E402

OUT_MD, OUT_JSON = ROOT / "calibration.md", ROOT / "calibration.json"
SHAPE = (3, 8, 8)


def tasks():
    from lit_ip.operators.identity import Identity
    from lit_ip.operators.inpainting import RandomInpainting
    from lit_ip.operators.noise import GaussianNoise
    from lit_ip.operators.resize import AveragePoolSR
    return {"denoise": (Identity(SHAPE), GaussianNoise(0.1)),
            "inpaint_70": (RandomInpainting(0.7, SHAPE), GaussianNoise(0.025)),
            "sr_2x": (AveragePoolSR(2, SHAPE), GaussianNoise(0.025))}


def dense(op) -> torch.Tensor:
    """The matrix of a (bound) linear operator on one image."""
    n = int(torch.tensor(SHAPE).prod())
    return op(torch.eye(n, dtype=torch.float32).view(n, *SHAPE)).reshape(n, -1).T.double()


def exact_samples(prior, op, y, sigma, indices, n, seed=0):
    from lit_ip.rng import SampleRNG
    out = []
    for j, i in enumerate(indices):
        post = prior.posterior(dense(op.bind([i], seed)), y[j].flatten(), sigma)
        out.append(post.sample(n, SampleRNG.for_indices([i], seed + 1, "sampler").repeat(n)))
    return torch.stack(out)


def summarize(xs, x0) -> dict:
    from lit_ip.metrics.calibration import calibration
    cal = calibration(xs.double(), x0.double())
    n = xs.shape[1]
    ratio = float(cal["mse_samples"].mean() / cal["mse_mean"].mean()) * (n + 1) / n
    se = float(cal["coverage90"].std() / len(x0) ** 0.5)
    return {"mse_ratio": ratio, "coverage90": float(cal["coverage90"].mean()), "coverage_se": se,
            "mse_mean": float(cal["mse_mean"].mean())}


def main(argv=None):
    from lit_ip.api import posterior_sample, simulate_measurement
    from lit_ip.metrics.calibration import reference_coverage
    from lit_ip.priors.synthetic import RandomGaussianPrior
    from lit_ip.rng import SampleRNG

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--steps", type=int, default=0,
                    help="override every method's num_steps (0: shipped settings); tables accumulate")
    args = ap.parse_args(argv)
    prior = RandomGaussianPrior(SHAPE, seed=0)
    idx = list(range(args.images))
    x0 = prior.sample(len(idx), SampleRNG.for_indices(idx, 123, "data")).clamp(0, 1)
    specs = {k: v for k, v in method_specs().items() if v["class_path"] not in OPTIMISERS}
    if args.steps:
        specs = {k: {**v, "init_args": {**v.get("init_args", {}), "num_steps": args.steps}} for k, v in specs.items()}
    label = f"num_steps = {args.steps} for every method" if args.steps else "shipped settings"
    results = {}
    for tname, (op, noise) in tasks().items():
        y = simulate_measurement(op, x0, noise, indices=idx)
        t0 = time.time()
        results[(tname, "exact posterior")] = summarize(
            exact_samples(prior, op, y, noise.sigma, idx, args.samples), x0)
        for mname, spec in specs.items():
            try:
                xs = posterior_sample(prior, op, y, build(spec), noise, num_samples=args.samples, indices=idx)
            except ValueError as e:
                results[(tname, mname)] = {"refused": str(e).splitlines()[-1][:120]}
                continue
            results[(tname, mname)] = summarize(xs, x0)
            r = results[(tname, mname)]
            print(f"{tname} {mname}: ratio {r['mse_ratio']:.2f} coverage {r['coverage90']:.2f}", flush=True)
        print(f"{tname}: {time.time() - t0:.0f} s", flush=True)
    store = json.loads(OUT_JSON.read_text()) if OUT_JSON.exists() else {}
    store[label] = {"samples": args.samples, "images": args.images,
                    "results": {f"{t}|{m}": v for (t, m), v in results.items()}}
    OUT_JSON.write_text(json.dumps(store, indent=1))
    write(store)


def write(store: dict) -> None:
    from lit_ip.metrics.calibration import reference_coverage

    lines = ["# Calibration on a Gaussian prior with an exact answer", "",
             "Written by `benchmarks/calibration.py` (protocol in its docstring): RandomGaussianPrior(3x8x8, "
             "seed 0), ground truths drawn from the prior, the methods of `configs/method/*.yaml` (optimisers "
             "RED-diff and DMPlug left out: one output). The 'exact posterior' row draws from the "
             "closed-form posterior: it checks the metric itself.", ""]
    for label, block in store.items():
        res = {tuple(k.split("|")): v for k, v in block["results"].items()}
        tnames = list(dict.fromkeys(t for t, _ in res))
        names = list(dict.fromkeys(m for _, m in res))
        lines += [f"## {label}", "", f"{block['images']} images, {block['samples']} samples each. Cells: MSE ratio "
                  f"(exact sampler: 2) / coverage of the 90% per-pixel interval (exact sampler with "
                  f"{block['samples']} samples: {reference_coverage(block['samples']):.2f}).", "",
                  "| method | " + " | ".join(tnames) + " |", "|---|" + "---|" * len(tnames)]
        for m in names:
            cells = []
            for t in tnames:
                r = res.get((t, m), {})
                cells.append("refused" if "refused" in r else f"{r['mse_ratio']:.2f} / {r['coverage90']:.2f}")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    OUT_MD.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
