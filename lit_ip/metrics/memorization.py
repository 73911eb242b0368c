"""Memorisation of a trained prior: how close are its samples to its training images?

For each query image ``q`` (a generated sample, or a held-out image), with ``d`` the per-pixel
RMS distance ``||q - x||_2 / sqrt(D)`` and ``x`` ranging over the training images (and their
horizontal flips when training used flips):

    nn(q)    = min_x d(q, x)                   (nearest training image)
    ratio(q) = nn(q) / second-nearest distance (Carlini et al. 2023 / Somepalli et al. 2023:
                                                 a ratio far below 1 flags a near-copy)

A prior that generalises produces samples whose ``nn`` is comparable with the held-out images'
``nn`` (held-out images were never trained on); samples much closer than held-out images, or
many ratios below ``copy_ratio``, indicate memorisation.

``lit-ip memorization --prior faces_ddpm --data faces`` prints the report for a prior.
"""
from __future__ import annotations

import argparse
import json
from typing import Optional, Sequence

import torch
from torch import Tensor


def pairwise_rms(queries: Tensor, references: Tensor) -> Tensor:
    """(N, M) per-pixel RMS distances ``||q - x||_2 / sqrt(D)``."""
    q, r = queries.flatten(1).double(), references.flatten(1).double()
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} values per image, references {r.shape[1]}")
    return torch.cdist(q, r) / q.shape[1] ** 0.5


def nearest_distances(queries: Tensor, train: Tensor, flips: bool = True, k: int = 2) -> Tensor:
    """(N, k) distances to the ``k`` nearest training images; with ``flips`` an image and its
    mirror count as one training image (distance = the smaller of the two)."""
    d = pairwise_rms(queries, train)
    if flips:
        d = torch.minimum(d, pairwise_rms(queries, train.flip(-1)))
    return d.topk(min(k, d.shape[1]), dim=1, largest=False).values


def memorization_report(samples: Tensor, train: Tensor, heldout: Tensor, flips: bool = True,
                        copy_ratio: float = 1 / 3) -> dict:
    """Nearest-training-image statistics of ``samples`` versus ``heldout`` (all (N, C, H, W) in [0, 1])."""
    if train.shape[0] < 2:
        raise ValueError("need at least two training images")
    out = {}
    for name, q in (("samples", samples), ("heldout", heldout)):
        d = nearest_distances(q, train, flips)
        nn, ratio = d[:, 0], d[:, 0] / d[:, 1].clamp_min(1e-12)
        out[name] = {"n": int(q.shape[0]), "nn_mean": float(nn.mean()), "nn_median": float(nn.median()),
                     "nn_min": float(nn.min()), "copy_fraction": float((ratio < copy_ratio).double().mean())}
    out["nn_ratio_samples_to_heldout"] = out["samples"]["nn_mean"] / max(out["heldout"]["nn_mean"], 1e-12)
    return out


def _data(name: str, split: str, size: int) -> Tensor:
    from ..data import bundled

    sources = {"faces": lambda: bundled.LFWFaces(split, size),
               "natural": lambda: bundled.NaturalCrops(split, size)}
    if name not in sources:
        raise ValueError(f"unknown data {name!r}; known: {sorted(sources)}")
    ds = sources[name]()
    return torch.stack([ds[i]["image"] for i in range(len(ds))])


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """``lit-ip memorization``: samples from a prior, compared with its bundled training data."""
    ap = argparse.ArgumentParser(prog="lit-ip memorization", description=main.__doc__)
    ap.add_argument("--prior", required=True, help="prior directory or shipped name")
    ap.add_argument("--data", required=True, choices=["faces", "natural"], help="bundled training data")
    ap.add_argument("--num-samples", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50, help="sampler steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-flips", action="store_true", help="training used no horizontal flips")
    args = ap.parse_args(list(argv) if argv is not None else None)

    from ..api import prior_sample          # the command entry only: the metric itself needs no sampler
    from ..methods.base import Unconditional
    from ..priors.pretrained import PretrainedPrior

    prior = PretrainedPrior(args.prior)
    size = prior.image_shape[-1]
    eta = 1.0 if prior.path.kind == "vp" else 0.0   # DDPM ancestral / Euler, as lit-ip fit's sample grids
    samples = prior_sample(prior, args.num_samples, Unconditional(args.steps, eta=eta), seed=args.seed).clamp(0, 1)
    report = memorization_report(samples, _data(args.data, "train", size),
                                 _data(args.data, "heldout", size), flips=not args.no_flips)
    report.update(prior=args.prior, num_steps=args.steps, seed=args.seed)
    print(json.dumps(report, indent=2))
    return report
