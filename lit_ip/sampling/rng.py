"""Per-sample randomness.

The generator for sample ``i`` is seeded from ``(run seed, i)``, so a sample's
noise does not depend on batch size, batch order or the number of processes.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import Tensor

_MIX = 1_000_003  # a prime: seeds (seed, i) and (seed', i') rarely collide


def sample_seed(seed: int, index: int, stream: int = 0) -> int:
    """Deterministic 63-bit seed for sample ``index`` of a run with ``seed``.

    ``stream`` separates independent uses (0: sampler noise, 1: measurement noise,
    2: operator randomness such as masks) so they never share a generator.
    """
    return (int(seed) * _MIX * 7919 + int(index) * _MIX + int(stream) * 104_729 + 12345) % (2 ** 63 - 1)


class SampleRNG:
    """One ``torch.Generator`` per sample of a batch.

    ``randn(shape)`` with ``shape[0] == len(self)`` draws row ``i`` from generator ``i``.
    """

    def __init__(self, seeds: Sequence[int], device="cpu", dtype=torch.float32):
        self.seeds = [int(s) for s in seeds]
        self.device, self.dtype = torch.device(device), dtype
        self.generators = [torch.Generator(device="cpu").manual_seed(s) for s in self.seeds]

    @classmethod
    def for_indices(cls, indices: Iterable[int], seed: int = 0, stream: int = 0, **kw) -> "SampleRNG":
        return cls([sample_seed(seed, int(i), stream) for i in indices], **kw)

    def __len__(self) -> int:
        return len(self.generators)

    def _draw(self, fn, shape) -> Tensor:
        shape = tuple(shape)
        if shape[0] != len(self):
            raise ValueError(f"asked for {shape[0]} rows from a SampleRNG over {len(self)} samples")
        rows = [fn(shape[1:], generator=g, dtype=self.dtype) for g in self.generators]
        return torch.stack(rows).to(self.device)

    def randn(self, shape) -> Tensor:
        return self._draw(torch.randn, shape)

    def rand(self, shape) -> Tensor:
        return self._draw(torch.rand, shape)

    def repeat(self, n: int) -> "SampleRNG":
        """A generator per (sample, draw) pair for ``n`` posterior samples per measurement,
        ordered sample-major (rows ``i*n .. i*n+n-1`` belong to sample ``i``)."""
        seeds = [sample_seed(s, k, 3) for s in self.seeds for k in range(n)]
        return SampleRNG(seeds, self.device, self.dtype)

    def spawn(self, stream: int) -> "SampleRNG":
        """Independent generators (same samples) for another use."""
        return SampleRNG([sample_seed(s, 0, stream) for s in self.seeds], self.device, self.dtype)
