"""Why ExactInpainting on faces_noniso trails PiGDM / DPS on faces_ddpm for random-pixel inpainting
(benchmarks/faces_noniso.md): a test of "the error of the network's non-isotropic denoiser".

    OMP_NUM_THREADS=1 python benchmarks/noniso_speckle.py [--prior faces_noniso]

1. The denoiser's error on the maps ExactInpainting queries for 70% random inpainting: ``m = x0 + s ⊙ n``
   on held-out faces (fresh noise, i.e. the training distribution's construction), ``s`` the Eq. 9-10
   map at level ``sigma`` with ``sigma_y`` = 0 (noiseless: ``s = 0`` on observed pixels), 0.001 (the
   training range's lower end) and 0.025; MSE on the missing pixels, against the isotropic map at the
   same level (``s = sigma`` everywhere: plain denoising, 30% of training draws).
2. The sampler: ExactInpainting on 8 held-out faces (one sample, PSNR dB) with 100 and 300 steps,
   DDPM ancestral (eta 1) and DDIM (eta 0), and noiseless data given to the method as sigma_y = 0.001.
3. Along the sampler's trajectory (50 steps, 4 faces): at each level, the standardised residual
   ``(u - D(m, s)) / sigma`` on missing pixels of the visited state against that of a fresh-noise
   state ``u = x0 + sigma n`` (same map: a visited state off the training distribution would show here),
   and the missing-pixel MSE of ``D`` against the ground truth for both.

``--sections 3`` runs only part 3 and appends it to the output.

Writes ``benchmarks/noniso_speckle.md``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from lit_ip.api import posterior_sample, psnr_ssim, simulate_measurement
from lit_ip.data.bundled import LFWFaces
from lit_ip.methods import ExactInpainting
from lit_ip.operators.inpainting import RandomInpainting
from lit_ip.operators.noise import GaussianNoise
from lit_ip.priors.nonisotropic import inpainting_pseudo_observation
from lit_ip.priors.nonisotropic_network import NonIsotropicPretrainedPrior

ROOT = Path(__file__).resolve().parents[1]
PICK = [0, 2, 5, 7, 10, 12, 15, 17]
LEVELS = (0.02, 0.1, 0.5, 2.0, 10.0)
SIGMA_Y = (0.0, 0.001, 0.025)


def map_errors(prior, x, sigma, sigma_y, g):
    """Missing-pixel MSE of D(m, s) for the inpainting map and for the isotropic map at ``sigma``."""
    mask = (torch.rand(x.shape, generator=g) > 0.7).to(x)
    u = x + sigma * torch.randn(x.shape, generator=g)
    y = mask * (x + sigma_y * torch.randn(x.shape, generator=g))
    m, s = inpainting_pseudo_observation(u, y, mask, torch.tensor(sigma), sigma_y)
    miss = 1 - mask
    d = prior.denoise_map(m, s).clamp(0, 1)
    iso = prior.denoise_map(u, torch.full_like(u, sigma)).clamp(0, 1)
    err = lambda z: float(((z - x) ** 2 * miss).sum() / miss.sum())      # noqa: E731
    return err(d), err(iso)


class _Recording(ExactInpainting):
    """ExactInpainting that records, per step, the part-3 statistics against the ground truth ``x``."""

    def __init__(self, x, **kw):
        super().__init__(**kw)
        self.truth, self.rows = x, []

    def estimate(self, s, p):
        d = super().estimate(s, p)
        if float(s.a) > 0 and float(s.b / s.a) < 50:
            sig, x = float(s.b / s.a), self.truth
            miss = (1 - p.operator.mask.to(d)).expand_as(d)
            u, uf = s.x / s.a, x + sig * torch.randn_like(x)
            df = self.posterior_mean(s.a * uf, s.a, s.b, p)
            err = lambda z: float(((z - x) ** 2 * miss).sum() / miss.sum())        # noqa: E731
            self.rows.append((sig, float(((u - d) / sig)[miss.bool()].std()), float(((uf - df) / sig)[miss.bool()].std()),
                              err(d), err(df)))
        return d


def trajectory(ni, held):
    from lit_ip.rng import SampleRNG

    x, idx = held[PICK[:4]], list(range(4))
    family = RandomInpainting(0.7, (1, 32, 32))
    lines = ["", "## 3. Along the trajectory (50 steps, 4 held-out faces, 70% random inpainting)", "",
             "| data | sigma | residual std, visited | residual std, fresh | D MSE vs truth, visited | "
             "D MSE vs truth, fresh |", "|---|---|---|---|---|---|"]
    torch.manual_seed(0)
    for sy in (0.025, 0.0):
        noise = GaussianNoise(sy)
        y = simulate_measurement(family, x, noise, seed=0, indices=idx)
        rec = _Recording(x, num_steps=50)
        with torch.no_grad():
            rec.sample(ni, family.bind(idx, seed=0), y, SampleRNG.for_indices(idx, seed=0, stream=0), noise)
        for r in rec.rows[::5] + rec.rows[-1:]:
            lines.append(f"| sigma_y {sy} | {r[0]:.3f} | {r[1]:.3f} | {r[2]:.3f} | {r[3]:.5f} | {r[4]:.5f} |")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--prior", default="faces_noniso")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "noniso_speckle.md"))
    ap.add_argument("--sections", nargs="*", type=int, default=[1, 2, 3])
    args = ap.parse_args(argv)
    start = time.time()
    ni = NonIsotropicPretrainedPrior(args.prior)
    held = torch.stack([it["image"] for it in LFWFaces("heldout", 32)])
    if args.sections == [3]:
        out = Path(args.out)
        text = out.read_text().split("\n## 3.")[0].rstrip("\n").split("\nWall time")[0].rstrip("\n")
        out.write_text(text + "\n" + "\n".join(trajectory(ni, held)) + f"\n\nPart 3: {time.time() - start:.0f} s.\n")
        return
    lines = ["# ExactInpainting on faces_noniso: where the random-inpainting gap comes from", "",
             "Generated by `benchmarks/noniso_speckle.py`.", "",
             "## 1. Denoiser error on the inpainting maps (20 held-out faces, 70% missing, fresh noise; "
             "MSE on the missing pixels)", "",
             "| sigma | " + " | ".join(f"D(m, s), sigma_y {sy}" for sy in SIGMA_Y) + " | isotropic map (s = sigma) |",
             "|---|" + "---|" * (len(SIGMA_Y) + 1)]
    with torch.no_grad():
        for sigma in LEVELS:
            row, iso = [], None
            for sy in SIGMA_Y:
                d, iso = map_errors(ni, held, sigma, sy, torch.Generator().manual_seed(3))
                row.append(d)
            lines.append(f"| {sigma} | " + " | ".join(f"{v:.5f}" for v in row) + f" | {iso:.5f} |")
        print("\n".join(lines), flush=True)
    x, idx = held[PICK], list(range(len(PICK)))
    family = RandomInpainting(0.7, (1, 32, 32))
    runs = [("noisy 0.025", 0.025, 0.025, 100, 1.0), ("noisy 0.025", 0.025, 0.025, 300, 1.0),
            ("noisy 0.025", 0.025, 0.025, 100, 0.0),
            ("noiseless", 0.0, 0.0, 100, 1.0), ("noiseless", 0.0, 0.0, 300, 1.0), ("noiseless", 0.0, 0.0, 100, 0.0),
            ("noiseless", 0.0, 0.001, 100, 1.0)]
    lines += ["", "## 2. ExactInpainting, 70% random inpainting, 8 held-out faces, one sample: PSNR dB", "",
              "| data | sigma_y given to the method | steps | eta | PSNR |", "|---|---|---|---|---|"]
    for label, sy_data, sy_method, steps, eta in runs:
        y = simulate_measurement(family, x, GaussianNoise(sy_data), seed=0, indices=idx)
        out = posterior_sample(ni, family, y, ExactInpainting(num_steps=steps, eta=eta), GaussianNoise(sy_method),
                               seed=0, indices=idx)[:, 0]
        lines.append(f"| {label} | {sy_method} | {steps} | {eta:g} | {float(psnr_ssim(out, x)[0].mean()):.2f} |")
        print(lines[-1], flush=True)
    lines += trajectory(ni, held)
    lines += ["", f"Wall time {time.time() - start:.0f} s (2 shared cores)."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
