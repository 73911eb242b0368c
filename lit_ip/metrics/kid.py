"""Kernel Inception Distance whose value does not depend on the number of processes.

torchmetrics' KID keeps its features in list states reduced with ``None`` (one
all-gather per list element, so ranks with different numbers of updates issue different
numbers of collectives) and draws its random subsets from the global RNG in arrival
order. Here the states are concatenated (one gather each, uneven sizes allowed), each
feature row carries its sample index, rows are put in index order and the subsets come
from a generator with a fixed seed: the same data give the same KID on 1 or N processes.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.image.kid import poly_mmd
from torchmetrics.utilities.data import dim_zero_cat

_STATES = ("real_features", "real_index", "fake_features", "fake_index")


class KID(Metric):
    """Polynomial-kernel MMD between real and fake feature sets (Binkowski et al. 2018).

    Args:
        feature: module mapping images ``(N, C, H, W)`` to ``(N, d)``; has ``num_features``.
        subsets, subset_size: number and size of random subsets; the size shrinks to the
            number of available samples (reported as ``kid_subset_size``).
        seed: seed of the subset draws.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, feature: nn.Module, subsets: int = 50, subset_size: int = 1000,
                 degree: int = 3, gamma: Optional[float] = None, coef: float = 1.0, seed: int = 0, **kw):
        super().__init__(**kw)
        if not hasattr(feature, "num_features"):
            raise ValueError("KID's feature module needs a `num_features` attribute")
        self.feature = feature
        self.subsets, self.subset_size = int(subsets), int(subset_size)
        self.degree, self.gamma, self.coef, self.seed = degree, gamma, coef, int(seed)
        for name in _STATES:
            self.add_state(name, [], dist_reduce_fx="cat")

    def update(self, imgs: Tensor, real: bool, index: Tensor) -> None:
        feats = self.feature(imgs).double()
        index = torch.as_tensor(index, device=feats.device).long().reshape(-1)
        if index.numel() != feats.shape[0]:
            raise ValueError(f"KID.update got {feats.shape[0]} images but {index.numel()} indices")
        side = "real" if real else "fake"
        getattr(self, f"{side}_features").append(feats)
        getattr(self, f"{side}_index").append(index)

    def _sync_dist(self, *args, **kwargs) -> None:
        # a rank that saw no data still joins the gathers, with correctly shaped empties
        d = int(self.feature.num_features)
        for name in _STATES:
            state = getattr(self, name)
            if isinstance(state, list) and not state:
                shape, dtype = ((0, d), torch.float64) if name.endswith("features") else ((0,), torch.long)
                state.append(torch.zeros(shape, dtype=dtype, device=self.device))
        super()._sync_dist(*args, **kwargs)

    def _ordered(self, side: str) -> Tensor:
        feats = dim_zero_cat(getattr(self, f"{side}_features"))
        index = dim_zero_cat(getattr(self, f"{side}_index"))
        return feats[torch.argsort(index, stable=True)]

    def compute(self) -> dict[str, Tensor]:
        real, fake = self._ordered("real"), self._ordered("fake")
        size = min(self.subset_size, real.shape[0], fake.shape[0])
        if size < 2:
            raise RuntimeError(f"KID needs at least 2 real and 2 fake samples, got {real.shape[0]} and {fake.shape[0]}")
        gen = torch.Generator().manual_seed(self.seed)
        scores = []
        for _ in range(self.subsets):
            r = real[torch.randperm(real.shape[0], generator=gen)[:size].to(real.device)]
            f = fake[torch.randperm(fake.shape[0], generator=gen)[:size].to(fake.device)]
            scores.append(poly_mmd(r, f, self.degree, self.gamma, self.coef))
        scores = torch.stack(scores)
        return {"kid_mean": scores.mean(), "kid_std": scores.std(unbiased=False),
                "kid_subset_size": torch.tensor(size)}
