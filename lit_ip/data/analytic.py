"""Exact samples of an analytic prior as a data set (ground truth for toy runs)."""
from __future__ import annotations

from torch.utils.data import Dataset

from ..priors.base import Prior
from ..rng import SampleRNG

#: generator stream of data-set draws (see lit_ip.rng.STREAMS)
DATA_STREAM = "data"


class AnalyticPriorSamples(Dataset):
    """``num_samples`` exact draws of ``prior`` (one that has ``sample(n, rng)``).

    Item ``i`` is drawn from its own generator seeded by ``(seed, i)``, so it does not
    depend on which items are read or in what order. Keys are ``sample_00000``, ...

    Draws are exact, hence *not* clipped to [0, 1] unless ``clip=True`` (a clipped
    draw is no longer a sample of the prior; PNG outputs are always clipped).

    Args:
        prior: an analytic prior, e.g. :class:`~lit_ip.priors.synthetic.RandomGaussianPrior`.
        num_samples: data-set length.
        seed: data seed (independent of the sampling seed of the run).
        clip: clip draws to [0, 1].
    """

    def __init__(self, prior: Prior, num_samples: int = 16, seed: int = 0, clip: bool = False):
        if not callable(getattr(prior, "sample", None)):
            raise TypeError(f"{type(prior).__name__} cannot draw exact samples (it has no sample(n, rng) method)")
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.prior, self.num_samples, self.seed, self.clip = prior, int(num_samples), int(seed), bool(clip)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        if not 0 <= i < self.num_samples:
            raise IndexError(f"index {i} out of range for {self.num_samples} samples")
        x = self.prior.sample(1, SampleRNG.for_indices([i], self.seed, DATA_STREAM))[0].detach()
        return {"image": x.clamp(0, 1) if self.clip else x, "key": f"sample_{i:05d}", "index": i}
