"""Flow matching from a restricted Gaussian source on the training set's principal subspace
(``lit-ip fit``; "Small-Data Flow Matching", Luo et al. 2025 -- see :mod:`lit_ip.priors.subspace_source`).

:class:`SubspaceFlowTraining` is :class:`~lit_ip.lightning.training.DiffusionTraining` on a flow path
(rectified flow, velocity target) whose noise ``x1`` is drawn from
:class:`~lit_ip.priors.subspace_source.SubspaceGaussianSource` instead of ``N(0, I)``. The subspace
is fitted once, when fitting starts, on the training source's images in native units (their
horizontal mirrors included when the data module flips; shifts are not included), with ``k`` given
or chosen by ``explained_variance``; it is stored in the checkpoint (resume) and exported as
``source.safetensors`` beside the network.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..priors.network import NetworkPrior
from ..priors.subspace_source import SubspaceGaussianSource, init_noise_from
from .training import DiffusionTraining


class _SourcePrior(NetworkPrior):
    """A network prior whose samplers start from the restricted source."""

    def __init__(self, source: SubspaceGaussianSource, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.source_model = source

    def init_noise(self, batch_size, rng, t_start=None):
        return init_noise_from(self, self.source_model, batch_size, rng, t_start)


class SubspaceFlowTraining(DiffusionTraining):
    """Flow matching with the restricted source (module docstring).

    Args:
        k: subspace dimension; or
        explained_variance: the fraction of training variance the subspace must explain.
        subspace_flips: include mirrored training images in the subspace (default: when the data
            module flips).
        **kwargs: :class:`DiffusionTraining` arguments (``path`` must be a flow path with
            ``prediction: velocity``).
    """

    def __init__(self, k: Optional[int] = None, explained_variance: Optional[float] = None,
                 subspace_flips: Optional[bool] = None, **kwargs):
        super().__init__(**kwargs)
        if (k is None) == (explained_variance is None):
            raise ValueError("SubspaceFlowTraining needs exactly one of k and explained_variance")
        if self.prediction != "velocity" or self.path.kind != "rf":
            raise ValueError(f"the restricted source is for flow matching (path rf, prediction velocity); got "
                             f"path {self.path.kind!r}, prediction {self.prediction!r}")
        self.k, self.explained_variance, self.subspace_flips = k, explained_variance, subspace_flips
        self.source: Optional[SubspaceGaussianSource] = None

    # --- the subspace ---------------------------------------------------------------
    def fit_source(self, images: Tensor) -> SubspaceGaussianSource:
        """Fit the subspace on [0, 1] training images (converted to native units)."""
        lo, hi = self.data_range
        self.source = SubspaceGaussianSource.fit(lo + (hi - lo) * images, self.k, self.explained_variance)
        return self.source

    def on_fit_start(self):
        if self.source is not None:            # resumed: restored from the checkpoint
            return
        dm = self.trainer.datamodule
        train = getattr(dm, "train_set", None)
        if train is None:
            raise ValueError("SubspaceFlowTraining needs a TrainingData data module (to fit the subspace)")
        base = getattr(train, "source", train)
        images = torch.stack([base[i]["image"] for i in range(len(base))])
        flips = getattr(train, "hflip", False) if self.subspace_flips is None else self.subspace_flips
        if flips:
            images = torch.cat([images, images.flip(-1)])
        self.fit_source(images).to(self.device)
        if self.image_shape is None:
            self.image_shape = tuple(images.shape[1:])

    def noise_like(self, images: Tensor, generator=None) -> Tensor:
        if self.source is None:
            raise RuntimeError("the restricted source is not fitted yet (fit_source / on_fit_start)")
        return self.source.sample(images.shape[0], generator, like=images)

    # --- checkpoints and export ---------------------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        super().on_save_checkpoint(checkpoint)
        if self.source is not None:
            checkpoint["subspace_source"] = {"mean": self.source.mean.cpu(), "basis": self.source.basis.cpu()}

    def on_load_checkpoint(self, checkpoint):
        super().on_load_checkpoint(checkpoint)
        src = checkpoint.get("subspace_source")
        if src is not None:
            self.source = SubspaceGaussianSource(src["mean"], src["basis"], self.image_shape)

    def prior(self, ema: bool = True) -> NetworkPrior:
        if self.image_shape is None or self.source is None:
            raise ValueError("the prior needs the image shape and the fitted source (after the first batch)")
        return _SourcePrior(self.source, self.ema_network if ema else self.network, self.path, self.prediction,
                            self.image_shape, self.data_range, self.time_scale, clip_x0=self.clip_x0)

    def export_prior(self, directory, extra: Optional[dict] = None):
        if self.source is None:
            raise ValueError("the restricted source is not fitted; nothing to export")
        d = super().export_prior(directory, {**(extra or {}), "source": self.source.config()})
        self.source.save(d)
        return d
