"""Posterior-sampling throughput: images/s at batch 1, 4 and 16, and the DDP slowdown.

    python benchmarks/throughput.py [--steps 20] [--images 32] [--out benchmarks/throughput.json]

Prior: the shipped ``faces_ddpm`` if its weights are present in ``lit_ip/assets/priors``,
else a small random diffusers UNet (3x32x32) wrapped in a ``NetworkPrior`` (speed only,
the samples mean nothing). Method: DDRM on random inpainting (50% missing, sigma 0.05).

1. Batching: ``method.sample`` on batches of 1, 4 and 16 (one thread), images/s each.
2. DDP: ``Trainer.predict`` of the same images with ``devices=1`` and ``devices=2``
   (``strategy="ddp"``, CPU, one thread per process), each in its own process (the script
   relaunches itself with ``--ddp N``); timed inside the predict loop, between barriers,
   so process start-up and process-group set-up are excluded (the wall time with them is
   reported too). On a 2-core machine the ideal 2-process time is half the 1-process time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve()


def build(steps: int):
    """(prior, task, method, description)."""
    from lit_ip.lightning.sampling_module import Task
    from lit_ip.methods.ddrm import DDRM
    from lit_ip.operators.inpainting import RandomInpainting
    from lit_ip.operators.noise import GaussianNoise

    try:
        from lit_ip.priors.pretrained import PretrainedPrior
        prior, name = PretrainedPrior("faces_ddpm"), "shipped faces_ddpm"
    except (FileNotFoundError, ValueError, ImportError) as err:
        from lit_ip.models.unet import DiffusersUNet
        from lit_ip.priors.network import NetworkPrior
        from lit_ip.priors.paths import VPPath

        torch.manual_seed(0)
        net = DiffusersUNet(in_channels=3, sample_size=32, block_out_channels=(32, 64, 64))
        prior = NetworkPrior(net, VPPath(), "eps", (3, 32, 32)).eval().requires_grad_(False)
        name = f"random diffusers UNet 3x32x32 (faces_ddpm not usable: {str(err).splitlines()[0][:80]})"
    task = Task(RandomInpainting(fraction_missing=0.5, in_shape=list(prior.image_shape)), GaussianNoise(0.05))
    return prior, task, DDRM(num_steps=steps), name


class Images(torch.utils.data.Dataset):
    """Deterministic random images in [0, 1] (speed only)."""

    def __init__(self, n, shape):
        self.n, self.shape = n, tuple(shape)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"image": torch.rand(self.shape, generator=g), "key": f"img{i:05d}", "index": i}


def batching(steps: int, batches=(1, 4, 16)) -> dict:
    from lit_ip.rng import SampleRNG

    torch.set_num_threads(1)
    prior, task, method, name = build(steps)
    out = {"prior": name, "method": f"DDRM, {steps} steps", "threads": 1}
    for b in batches:
        x = torch.rand(b, *prior.image_shape, generator=torch.Generator().manual_seed(0))
        op = task.operator.bind(list(range(b)), 0)
        y = task.noise.sample(op(x), SampleRNG.for_indices(range(b), 0, 1))
        rng = SampleRNG.for_indices(range(b), 0, 0)
        method.sample(prior, op, y, rng, task.noise)  # warm-up
        reps = max(1, 16 // b)
        t0 = time.perf_counter()
        for _ in range(reps):
            method.sample(prior, op, y, SampleRNG.for_indices(range(b), 0, 0), task.noise)
        dt = time.perf_counter() - t0
        out[f"images_per_s_batch{b}"] = b * reps / dt
    out["batch16_vs_batch1_per_image_speedup"] = out["images_per_s_batch16"] / out["images_per_s_batch1"]
    out["batch4_vs_batch1_per_image_speedup"] = out["images_per_s_batch4"] / out["images_per_s_batch1"]
    return out


def ddp_worker(devices: int, steps: int, images: int, batch: int) -> None:
    """Run inside the relaunched process(es); rank 0 prints the loop time as JSON."""
    from lightning import Callback, Trainer

    from lit_ip.lightning.datamodules import ImageDataModule
    from lit_ip.lightning.sampling_module import PosteriorSamplingModule

    torch.set_num_threads(1)

    class Clock(Callback):
        def on_predict_epoch_start(self, trainer, pl_module):
            trainer.strategy.barrier("clock_start")
            self.t0 = time.perf_counter()

        def on_predict_epoch_end(self, trainer, pl_module):
            trainer.strategy.barrier("clock_end")
            self.dt = time.perf_counter() - self.t0

    prior, task, method, name = build(steps)
    module = PosteriorSamplingModule(prior, {"inpaint": task}, {"ddrm": method})
    clock = Clock()
    trainer = Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                      logger=False, enable_progress_bar=False, callbacks=[clock], enable_model_summary=False)
    trainer.predict(module, datamodule=ImageDataModule(Images(images, prior.image_shape), batch_size=batch),
                    return_predictions=False)
    if trainer.is_global_zero:
        print("RESULT " + json.dumps({"devices": devices, "loop_s": clock.dt, "prior": name}), flush=True)


def run_ddp(devices: int, steps: int, images: int, batch: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, str(HERE), "--ddp", str(devices), "--steps", str(steps),
           "--images", str(images), "--batch", str(batch)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"DDP run with {devices} device(s) failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(lines[-1][len("RESULT "):]), wall_s=wall)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--images", type=int, default=32, help="images of the DDP comparison")
    ap.add_argument("--batch", type=int, default=4, help="batch size per process in the DDP comparison")
    ap.add_argument("--repeats", type=int, default=2,
                    help="DDP runs of each kind, interleaved; the fastest counts (shared machines)")
    ap.add_argument("--ddp", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    if args.ddp:
        return ddp_worker(args.ddp, args.steps, args.images, args.batch)
    res = {"load_average_before": os.getloadavg(), "batching": batching(args.steps)}
    runs = {1: [], 2: []}
    for _ in range(args.repeats):
        for devices in (1, 2):
            runs[devices].append(run_ddp(devices, args.steps, args.images, args.batch))
    one, two = (min(runs[d], key=lambda r: r["loop_s"]) for d in (1, 2))
    res["ddp"] = {"loop_s_all_runs": {d: [round(r["loop_s"], 2) for r in rs] for d, rs in runs.items()},"images": args.images, "batch_per_process": args.batch, "one_process": one, "two_processes": two,
                  "two_vs_one_loop_time_ratio": two["loop_s"] / one["loop_s"],
                  "two_vs_one_wall_time_ratio": two["wall_s"] / one["wall_s"],
                  "cpu_cores": os.cpu_count(), "load_average_after": os.getloadavg()}
    print(json.dumps(res, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
