"""Per-sample randomness, shared by operators (masks, kernels), noise models and methods.

Every random draw of a run comes from a generator seeded by ``(run seed, sample index, stream)``,
so a sample's randomness does not depend on batch size, batch order or the number of processes.
Streams are named (:data:`STREAMS`) so that independent uses never share a generator:

==============  ==========================================================
``sampler``     a method's noise (initial state, stochastic steps, Langevin, particles)
``measurement`` the noise added to simulated measurements
``operator``    per-sample operator randomness (inpainting masks, blur kernels)
``repeat``      the extra draws of ``num_samples > 1`` posterior samples (see :meth:`SampleRNG.repeat`)
``data``        draws of synthetic data sets
==============  ==========================================================

Seeds are derived by hashing (BLAKE2b) the triple, so distinct triples give distinct generators
(no arithmetic collisions such as ``(1, 0) == (0, 7919)``).
"""
from __future__ import annotations

import hashlib
import struct
from typing import Iterable, Sequence, Union

import torch
from torch import Tensor

STREAMS = {"sampler": 0, "measurement": 1, "operator": 2, "repeat": 3, "data": 4}
Stream = Union[str, int]


def stream_id(stream: Stream) -> int:
    """The integer of a named stream (integers are accepted as they are)."""
    if isinstance(stream, str):
        if stream not in STREAMS:
            raise ValueError(f"unknown random stream {stream!r}; known: {sorted(STREAMS)}")
        return STREAMS[stream]
    return int(stream)


def sample_seed(seed: int, index: int, stream: Stream = "sampler") -> int:
    """Deterministic 63-bit seed for sample ``index`` of a run with ``seed`` and a ``stream``."""
    data = struct.pack("<3q", int(seed), int(index), stream_id(stream))
    digest = hashlib.blake2b(data, digest_size=8, person=b"lit_ip.rng").digest()
    return int.from_bytes(digest, "little") & (2 ** 63 - 1)


class SampleRNG:
    """One ``torch.Generator`` per sample of a batch.

    ``randn(shape)`` with ``shape[0] == len(self)`` draws row ``i`` from generator ``i``.
    """

    def __init__(self, seeds: Sequence[int], device="cpu", dtype=torch.float32):
        self.seeds = [int(s) for s in seeds]
        self.device, self.dtype = torch.device(device), dtype
        self.generators = [torch.Generator(device="cpu").manual_seed(s) for s in self.seeds]

    @classmethod
    def for_indices(cls, indices: Iterable[int], seed: int = 0, stream: Stream = "sampler", **kw) -> "SampleRNG":
        return cls([sample_seed(seed, int(i), stream) for i in indices], **kw)

    def __len__(self) -> int:
        return len(self.generators)

    def _draw(self, fn, shape) -> Tensor:
        shape = tuple(shape)
        if shape[0] != len(self):
            raise ValueError(f"asked for {shape[0]} rows from a SampleRNG over {len(self)} samples")
        out = torch.empty(shape, dtype=self.dtype)
        for row, g in zip(out, self.generators):     # one call per sample, written in place
            fn(shape[1:], generator=g, dtype=self.dtype, out=row)
        return out.to(self.device)

    def randn(self, shape) -> Tensor:
        return self._draw(torch.randn, shape)

    def rand(self, shape) -> Tensor:
        return self._draw(torch.rand, shape)

    def repeat(self, n: int) -> "SampleRNG":
        """Generators for ``n`` posterior samples per measurement, sample-major (rows
        ``i*n .. i*n+n-1`` belong to sample ``i``). Draw ``k = 0`` keeps sample ``i``'s own
        seed, so the first of ``n`` samples is the sample of a run with ``num_samples: 1``;
        draws ``k >= 1`` come from the ``repeat`` stream."""
        seeds = [s if k == 0 else sample_seed(s, k, "repeat") for s in self.seeds for k in range(n)]
        return SampleRNG(seeds, self.device, self.dtype)

    def spawn(self, stream: Stream) -> "SampleRNG":
        """Independent generators (same samples) for another use."""
        return SampleRNG([sample_seed(s, 0, stream) for s in self.seeds], self.device, self.dtype)


class BatchRNG:
    """One generator for a whole batch of ``n`` i.i.d. samples (the :class:`SampleRNG` interface).

    For statistics over thousands of draws (exact-posterior benchmarks), where only independence
    matters and per-sample generators would dominate the run time. Rows are *not* reproducible
    one by one across batch sizes: runs that write per-sample results use :class:`SampleRNG`.
    """

    def __init__(self, n: int, seed: int = 0, device="cpu", dtype=torch.float64):
        self.n, self.seed = int(n), int(seed)
        self.device, self.dtype = torch.device(device), dtype
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed)

    def __len__(self) -> int:
        return self.n

    def _draw(self, fn, shape) -> Tensor:
        shape = tuple(shape)
        if shape[0] != self.n:
            raise ValueError(f"asked for {shape[0]} rows from a BatchRNG over {self.n} samples")
        return fn(shape, generator=self.generator, dtype=self.dtype).to(self.device)

    def randn(self, shape) -> Tensor:
        return self._draw(torch.randn, shape)

    def rand(self, shape) -> Tensor:
        return self._draw(torch.rand, shape)

    def spawn(self, stream: Stream) -> "BatchRNG":
        """An independent generator (same samples) for another use (as :meth:`SampleRNG.spawn`)."""
        return BatchRNG(self.n, sample_seed(self.seed, 0, stream), self.device, self.dtype)


__all__ = ["STREAMS", "sample_seed", "stream_id", "SampleRNG", "BatchRNG"]
