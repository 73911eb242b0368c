"""Helpers shared by the particle methods (MCGdiff, SMCDiff, FPS-SMC, TDS): per-measurement particle
randomness, prior calls in chunks of particles, and resampling.

Particles are stored sample-major: rows ``i*N .. i*N+N-1`` of a ``(B * N, ...)`` tensor are the
``N`` particles of measurement ``i``, and all their random draws come from measurement ``i``'s
generator, so results do not depend on the batch. Only the prior calls are chunked
(``particle_chunk`` rows at a time); the random draws are made for all particles at once, so
results do not depend on the chunk size either.

Memory: every network call (forward, and TDS's vector-Jacobian product through it, whose autograd
graph lives only inside its chunk) sees at most ``particle_chunk`` images, so the network's working
memory -- activations and graphs, the bulk of it for any real network -- is that of the chunk. What
stays ``batch x particles`` is the particle system itself: the states ``x``, their clean estimates
and the per-coordinate spectral arrays (a few tensors of ``batch x particles x d`` numbers, no
activations). They are kept whole because resampling draws the ``N`` particles of a measurement
from all of its ``N`` particles; splitting them would need the weights of every chunk first, i.e.
the same memory. ``benchmarks/particle_memory.py`` measures peak memory against the chunk size.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor


class ParticleRNG:
    """Draws ``(B * N, ...)`` rows, particle rows ``i*N .. i*N+N-1`` from measurement ``i``'s generator."""

    def __init__(self, rng, n: int):
        self.rng, self.n = rng, int(n)

    def randn(self, shape) -> Tensor:
        return self.rng.randn((len(self.rng), self.n, *shape[1:])).reshape(shape)

    def rand(self, shape) -> Tensor:
        return self.rng.rand((len(self.rng), self.n, *shape[1:])).reshape(shape)


def check_chunk(particle_chunk: Optional[int]) -> Optional[int]:
    if particle_chunk is not None and int(particle_chunk) < 1:
        raise ValueError(f"particle_chunk must be >= 1 (or None = all particles at once), got {particle_chunk}")
    return None if particle_chunk is None else int(particle_chunk)


def chunked(fn: Callable[[Tensor], tuple], x: Tensor, chunk: Optional[int]) -> tuple:
    """``fn`` applied to row chunks of ``x`` (``chunk`` rows; None = all), outputs concatenated.
    ``fn`` returns a tuple of tensors with one row per input row."""
    if chunk is None or chunk >= x.shape[0]:
        return fn(x)
    parts = [fn(xc) for xc in x.split(chunk)]
    return tuple(torch.cat(p) for p in zip(*parts))


def chunked_denoise(prior, x: Tensor, t, chunk: Optional[int]) -> Tensor:
    """``prior.denoise(x, t)`` in chunks of ``chunk`` rows (no gradient)."""
    with torch.no_grad():
        return chunked(lambda xc: (prior.denoise(xc, t),), x, chunk)[0]


def systematic_resample(logw: Tensor, u: Tensor) -> Tensor:
    """Indices ``(B, N)`` into each row's ``N`` particles by systematic resampling with offsets ``u`` (B, 1)."""
    N = logw.shape[1]
    cdf = torch.cumsum(torch.softmax(logw, 1), 1)
    cdf[:, -1] = 1.0
    positions = (u + torch.arange(N, dtype=cdf.dtype, device=cdf.device)) / N
    return torch.searchsorted(cdf.contiguous(), positions.contiguous()).clamp(max=N - 1)


def gather_particles(x: Tensor, idx: Tensor) -> Tensor:
    """Rows of ``x`` (``B * N``, ...) picked per measurement by ``idx`` (B, N) or (B,)."""
    B, N = idx.shape[0], x.shape[0] // idx.shape[0]
    offset = N * torch.arange(B, device=idx.device)
    flat = (idx + (offset[:, None] if idx.ndim == 2 else offset)).flatten()
    return x[flat]


def pick_one(logw: Tensor, u: Tensor) -> Tensor:
    """One particle index per measurement (B,) drawn by the weights with uniforms ``u`` (B, 1)."""
    cdf = torch.cumsum(torch.softmax(logw, 1), 1)
    cdf[:, -1] = 1.0
    return torch.searchsorted(cdf, u.to(cdf))[:, 0].clamp(max=logw.shape[1] - 1)


__all__ = ["ParticleRNG", "check_chunk", "chunked", "chunked_denoise", "systematic_resample",
           "gather_particles", "pick_one"]
