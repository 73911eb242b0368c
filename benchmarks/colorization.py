"""Why methods lose to the grey image on colorization: the prior, the samples, or a bug?

On the 4 training crops of benchmarks/sweep_methods.py (NaturalCrops split="train", natural_ddpm,
the demo's colorize task, sigma 0.025), prints: the operator checks (``A A^+ y = y``, ``A grey = y``,
the colour of ``A^+``), the chroma ``x - (w^T x) 1`` of the crops and of unconditional prior samples,
the PSNR an independent-colour sample would get, and for DDRM and PiGDM (shipped settings) the PSNR
of one sample and of the posterior mean of 2 and 8 samples, per crop. Results: benchmarks/colorization.md.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/colorization.py
"""
from __future__ import annotations

import math

import torch

from lit_ip.api import bind, posterior_sample, prior_sample, psnr_ssim
from lit_ip.methods.base import Unconditional
from lit_ip.methods.ddrm import DDRM
from lit_ip.methods.pigdm import PiGDM
from lit_ip.priors.pretrained import PretrainedPrior
from sweep_methods import INDICES, problems

W = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def lum(v):
    return (v * W).sum(-3, keepdim=True)


def chroma(v):
    """The part of ``v`` that colorization does not measure (``w^T chroma = 0`` as ``sum w = 1``)."""
    return v - lum(v)


def rms(v) -> float:
    return float(v.pow(2).mean().sqrt())


def corr(a, b) -> float:
    return float((chroma(a) * chroma(b)).sum() / (chroma(a).norm() * chroma(b).norm()))


def main():
    torch.set_num_threads(1)
    prior = PretrainedPrior("natural_ddpm")
    x, probs = problems("natural_ddpm")
    op, noise, y, grey = probs["colorize"]
    opb = bind(op, INDICES, 0)
    print(f"sum w = {float(W.sum()):.6f}; |A grey - y| = {rms(opb(grey) - y):.2e}; "
          f"|A A^+ y - y| = {rms(opb(opb.pinv(y)) - y):.2e}; noise |A x - y| = {rms(opb(x) - y):.4f}")
    print("A^+ of a unit luminance:", [round(v, 3) for v in opb.pinv(torch.ones(1, 1, 32, 32))[0, :, 0, 0].tolist()])
    psnr = lambda v: [round(float(p), 2) for p in psnr_ssim(v, x)[0]]  # noqa: E731
    print(f"grey PSNR per crop {psnr(grey.expand_as(x))}; crops' chroma rms {rms(chroma(x)):.4f} "
          f"(per crop {[round(rms(chroma(x[i])), 3) for i in range(len(x))]})")
    for eta in (1.0, 0.0):
        u = prior_sample(prior, 16, Unconditional(num_steps=25, eta=eta))
        pred = float(chroma(x).pow(2).mean() + chroma(u).pow(2).mean())
        print(f"prior samples (25 steps, eta {eta}, 16 draws): chroma rms {rms(chroma(u)):.4f}; an independent-"
              f"colour sample with the true luminance: {10 * math.log10(1 / pred):.2f} dB (pooled MSE)")
    for name, method in [("ddrm", DDRM(num_steps=25)), ("pigdm", PiGDM(num_steps=25, eta=1.0))]:
        xs = posterior_sample(prior, op, y, method, noise, num_samples=8, indices=INDICES)
        print(f"{name}: PSNR per crop, 1 sample {psnr(xs[:, 0])}, mean of 2 {psnr(xs[:, :2].mean(1))}, "
              f"mean of 8 {psnr(xs.mean(1))}; chroma rms: samples {rms(chroma(xs.flatten(0, 1))):.4f}, "
              f"mean of 8 {rms(chroma(xs.mean(1))):.4f}; chroma correlation with the truth: one sample "
              f"{corr(xs[:, 0], x):.2f}, mean of 8 {corr(xs.mean(1), x):.2f}; luminance error rms "
              f"{rms(lum(xs.flatten(0, 1)) - y.repeat_interleave(8, 0)):.4f}")


if __name__ == "__main__":
    main()
