"""Training a non-isotropic denoiser (a noise level per pixel) with ``lit-ip fit``.

:class:`NonIsotropicTraining` is :class:`~lit_ip.lightning.training.DiffusionTraining` (same
optimizer, schedule, EMA, freezing, ``init_from``, :class:`~lit_ip.lightning.training.ExportPrior`)
with the loss of a per-pixel EDM-preconditioned denoiser
(:mod:`lit_ip.priors.nonisotropic_network`):

    E_{x0, sigma, eps} mean_pixels || F([c_in x_n, l(sigma)], t_in) - (x0_n - c_skip x_n) / c_out ||^2,
    x_n = x0_n + s_n eps,

which is EDM's loss with its weighting ``1 / c_out^2`` applied per pixel (Karras et al. 2022,
arXiv:2206.00364, Eq. 8 and Table 1). The level maps ``sigma`` are drawn by
:meth:`lit_ip.priors.nonisotropic.NonIsotropicPath.sample_maps`: uniform maps (30%) and the
two-level maps of the exact inpainting posterior (random-pixel and box masks; the observed pixels
at ``sigma sigma_y / sqrt(sigma^2 + sigma_y^2)``), see its docstring. The network takes the map as
extra input channels. ``path`` (the DiffusionTraining argument) is the isotropic path the exported
prior exposes to ordinary methods (default DDPM linear).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..priors.nonisotropic import NonIsotropicPath
from ..priors.nonisotropic_network import NonIsotropicNetworkPrior, network_terms, save_noniso_prior_dir
from .training import DiffusionTraining


class NonIsotropicTraining(DiffusionTraining):
    """Non-isotropic denoiser training (module docstring).

    Args:
        network: ``F(x_in (B, 2 C, H, W), t_in)`` (e.g. ``DiffusersUNet(in_channels=2, out_channels=1)``
            for gray images); None takes it from ``init_from``.
        noise: the non-isotropic path and its training-map distribution ([0, 1] units).
        sigma_data: EDM's data std in native units.
        **kwargs: :class:`DiffusionTraining` arguments (``path``, ``data_range``, optimizer, EMA,
            ``init_from``, ``freeze``, ``val_levels``, ``clip_x0``, ...); ``prediction`` is unused.
    """

    def __init__(self, network: Optional[nn.Module] = None, noise: Optional[NonIsotropicPath] = None,
                 sigma_data: float = 0.5, **kwargs):
        super().__init__(network=network, **kwargs)
        self.noise = noise if noise is not None else NonIsotropicPath()
        if not float(sigma_data) > 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
        self.sigma_data = float(sigma_data)

    def noniso_loss(self, net: nn.Module, images: Tensor, sigma: Tensor, eps: Tensor) -> Tensor:
        """Per-sample EDM loss at level maps ``sigma`` ((B, 1 or C, H, W), [0, 1] units)."""
        lo, hi = self.data_range
        sigma = sigma.to(images)
        u = self.noise.noise(images, sigma, eps)
        out, x_n, c_skip, c_out = network_terms(net, self.noise, u, sigma, self.data_range, self.sigma_data)
        target = (lo + (hi - lo) * images - c_skip * x_n) / c_out
        return (out - target).pow(2).flatten(1).mean(1)

    def batch_loss(self, images):
        sigma = self.noise.sample_maps(images.shape[0], images.shape[1:]).to(images.device)
        return self.noniso_loss(self.network, images, sigma, torch.randn_like(images)).mean()

    def validation_step(self, batch, batch_idx):
        """Held-out loss of the EMA network over ``val_levels`` fixed draws of maps and noise."""
        images = batch["image"]
        g = torch.Generator().manual_seed(1000 + batch_idx)
        losses = []
        for _ in range(self.val_levels):
            sigma = self.noise.sample_maps(images.shape[0], images.shape[1:], g).to(images.device)
            eps = torch.randn(images.shape, generator=g).to(images)
            losses.append(self.noniso_loss(self.ema_network, images, sigma, eps))
        self.log("val_loss", torch.stack(losses).mean(), prog_bar=True, on_epoch=True,
                 batch_size=images.shape[0])

    def prior(self, ema: bool = True) -> NonIsotropicNetworkPrior:
        if self.image_shape is None:
            raise ValueError("image_shape is unknown before the first training batch; pass image_shape")
        return NonIsotropicNetworkPrior(self.ema_network if ema else self.network, self.noise, self.path,
                                        self.image_shape, self.data_range, self.sigma_data, self.clip_x0)

    def export_prior(self, directory, extra: Optional[dict] = None):
        unet = self.exportable_unet()
        return save_noniso_prior_dir(directory, unet, self.noise, self.path, self.data_range,
                                     self.image_shape, self.sigma_data, self.clip_x0, extra)
