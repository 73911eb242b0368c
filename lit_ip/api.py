"""One-call helpers for notebooks and scripts, with the seeding of ``lit-ip predict``.

The math layers take explicit objects (a bound operator, a :class:`SampleRNG` per use),
which is what a data-set run needs but is many steps for one image. These helpers do
those steps the way :class:`~lit_ip.lightning.sampling_module.PosteriorSamplingModule`
does, so a sample drawn here for item ``index`` with run ``seed`` is the sample the CLI
writes for that item (up to float rounding between batch sizes)::

    from lit_ip import posterior_sample, simulate_measurement
    y = simulate_measurement(op, x, noise, seed=0, indices=[3])
    xs = posterior_sample(prior, op, y, PiGDM(num_steps=50), noise,
                          num_samples=8, seed=0, indices=[3])      # (1, 8, C, H, W)

Seeding (:mod:`lit_ip.rng`): operator randomness (masks) comes from
``operator.bind(indices, seed)`` (stream ``operator``), measurement noise from stream
``measurement`` and the sampler from stream ``sampler``, with ``.repeat(num_samples)`` for
several posterior samples (the first of which is the sample of ``num_samples=1``).
Operator *families* (``RandomInpainting``, ``BoxInpainting``) may be passed unbound:
every helper binds them to ``indices`` itself, so ``y`` and the samples see the same mask.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from .methods.base import Method, Unconditional
from .operators.base import Operator
from .operators.identity import Identity
from .operators.noise import GaussianNoise, NoiseModel
from .priors.base import Prior
from .rng import SampleRNG

__all__ = ["simulate_measurement", "posterior_sample", "prior_sample", "pseudo_inverse", "psnr_ssim", "bind"]

#: SampleRNG streams (as in :mod:`lit_ip.rng` and the predict module)
SAMPLER, MEASUREMENT = "sampler", "measurement"


def _indices(indices: Optional[Sequence[int]], batch: int, what: str) -> list[int]:
    if indices is None:
        return list(range(batch))
    if isinstance(indices, int):
        indices = [indices]
    out = [int(i) for i in indices]
    if len(out) != batch:
        raise ValueError(f"{what} has {batch} rows but {len(out)} indices were given "
                         f"(one data-set index per row)")
    return out


def bind(operator: Operator, indices: Sequence[int], seed: int = 0, device=None) -> Operator:
    """``operator.bind(indices, seed)`` moved to ``device``: the concrete operator for these
    samples (a family draws one mask per index; other operators return themselves)."""
    op = operator.bind([int(i) for i in indices], int(seed))
    return op if (op is operator or device is None) else op.to(device)


@torch.no_grad()
def simulate_measurement(operator: Operator, x: Tensor, noise: Optional[NoiseModel] = None, *,
                         seed: int = 0, indices: Optional[Sequence[int]] = None) -> Tensor:
    """``y = noise(A(x))`` for clean images ``x`` (B, C, H, W) in [0, 1].

    Args:
        operator: the forward operator (a family is bound to ``indices`` here).
        x: ground-truth images.
        noise: noise model (default noiseless).
        seed: run seed.
        indices: data-set index of each row of ``x`` (default ``0..B-1``); it picks the
            mask and the noise, as in ``lit-ip predict``.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be a batch of images (B, C, H, W), got shape {tuple(x.shape)}")
    idx = _indices(indices, x.shape[0], "x")
    noise = GaussianNoise(0.0) if noise is None else noise
    op = bind(operator, idx, seed, x.device)
    return noise.sample(op(x), SampleRNG.for_indices(idx, seed, MEASUREMENT, device=x.device))


def posterior_sample(prior: Prior, operator: Operator, y: Tensor, method: Method,
                     noise: Optional[NoiseModel] = None, *, num_samples: int = 1, seed: int = 0,
                     indices: Optional[Sequence[int]] = None) -> Tensor:
    """Posterior samples for every row of ``y``: a tensor ``(B, num_samples, C, H, W)``.

    Args:
        prior: the image prior.
        operator: the forward operator that made ``y`` (a family is bound to ``indices``).
        y: measurements, one row per data-set item.
        method: the posterior sampler (e.g. ``PiGDM(num_steps=50)``).
        noise: the noise model of ``y`` (default noiseless); its sigma guides the method.
        num_samples: posterior samples per measurement.
        seed: run seed.
        indices: data-set index of each row of ``y`` (default ``0..B-1``).
    """
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if not isinstance(method, Method):
        raise TypeError(f"method must be a lit_ip Method (e.g. PiGDM(num_steps=50)), got {type(method).__name__}")
    n = int(num_samples)
    idx = _indices(indices, y.shape[0], "y")
    noise = GaussianNoise(0.0) if noise is None else noise
    op_n = bind(operator, [i for i in idx for _ in range(n)], seed, y.device)
    y_n = y if n == 1 else y.repeat_interleave(n, 0)
    method.check_inputs(prior, op_n, y_n, noise)
    rng = SampleRNG.for_indices(idx, seed, SAMPLER, device=y.device)
    x = method.sample(prior, op_n, y_n, rng if n == 1 else rng.repeat(n), noise)
    return x.detach().reshape(len(idx), n, *prior.image_shape)


@torch.no_grad()
def prior_sample(prior: Prior, num_samples: int = 1, method: Optional[Method] = None, *,
                 seed: int = 0) -> Tensor:
    """``num_samples`` unconditional draws from ``prior``: a tensor ``(num_samples, C, H, W)``.

    ``method`` defaults to :class:`~lit_ip.methods.base.Unconditional` with 50 steps (DDPM
    ancestral, ``eta=1``, on VP paths; deterministic Euler / DDIM, ``eta=0``, otherwise).
    Draw ``k`` uses the sampler generator of index ``k`` (as the samples written during
    ``lit-ip fit``).
    """
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if method is None:
        method = Unconditional(num_steps=50, eta=1.0 if prior.path.kind == "vp" else 0.0)
    device = prior.device
    y = torch.zeros(int(num_samples), *prior.image_shape, device=device)  # ignored by Unconditional
    rng = SampleRNG.for_indices(range(int(num_samples)), seed, SAMPLER, device=device)
    return method.sample(prior, Identity(prior.image_shape), y, rng).detach()


@torch.no_grad()
def pseudo_inverse(operator: Operator, y: Tensor, *, seed: int = 0,
                   indices: Optional[Sequence[int]] = None) -> Optional[Tensor]:
    """The baseline reconstruction ``A^+ y`` (linear operators; ``h_dagger`` for the
    non-linear ones that define it; ``None`` otherwise), with the image shape."""
    op = bind(operator, _indices(indices, y.shape[0], "y"), seed, y.device)
    if op.linear:
        return op.pinv(y)
    if op.has_h_dagger:
        return op.h_dagger(y)
    return None


def psnr_ssim(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """PSNR (dB) and SSIM per image, as ``lit-ip predict`` reports them (torchmetrics,
    ``data_range=1``, images clipped to [0, 1], SSIM's 11x11 window shrunk for small images).

    ``pred`` is ``(..., C, H, W)`` (e.g. ``(B, num_samples, C, H, W)``) and ``target``
    broadcasts to it (e.g. ``(B, 1, C, H, W)`` or one image ``(C, H, W)``); both results
    have ``pred``'s leading shape.
    """
    from .metrics.image import ImageMetrics

    lead, chw = pred.shape[:-3], pred.shape[-3:]
    target = torch.broadcast_to(target.to(pred.device, pred.dtype), pred.shape)
    flat = lambda t: t.detach().float().clamp(0, 1).reshape(-1, *chw)  # noqa: E731
    values = ImageMetrics(lpips=False, fid=False, kid=False).per_image(flat(pred), flat(target))
    return values["psnr"].reshape(lead).cpu(), values["ssim"].reshape(lead).cpu()
