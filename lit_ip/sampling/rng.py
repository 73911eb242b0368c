"""Compatibility alias: per-sample randomness lives in :mod:`lit_ip.rng`."""
from ..rng import STREAMS, SampleRNG, sample_seed, stream_id  # noqa: F401

__all__ = ["STREAMS", "sample_seed", "stream_id", "SampleRNG"]
