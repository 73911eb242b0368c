"""A network non-isotropic denoiser ``D(u, sigma)`` (a noise level per pixel) as a prior, and its
prior directory.

EDM preconditioning (Karras et al. 2022, arXiv:2206.00364, Sec. 5), applied *per pixel*, in the
network's native units ``x_n = lo + span u``, ``s_n = span sigma`` (``span = hi - lo``):

    D_n = c_skip ⊙ x_n + c_out ⊙ F([c_in ⊙ x_n, l(sigma)], 1000 mean(l(sigma))),
    c_in = 1 / sqrt(s_n^2 + sd^2),  c_skip = sd^2 / (s_n^2 + sd^2),  c_out = s_n sd / sqrt(s_n^2 + sd^2),

with ``l(sigma)`` the log level mapped to [0, 1] (:meth:`NonIsotropicPath.log_level`), given to the
network as extra input channels (one per image channel) and, averaged, as its time input.
A pixel with ``sigma = 0`` is returned unchanged (``c_skip = 1, c_out = 0``), exactly right.

The prior is also an ordinary isotropic prior on ``path`` (default: DDPM linear VP, the path of
the shipped ``faces_ddpm``): ``denoise(x_t, t) = D(x_t / a, b / a)``, so every method runs on it.

A prior directory is the usual one (:mod:`lit_ip.priors.pretrained`) with ``prediction: "edm"``
and a ``non_isotropic`` entry in ``prior.json`` (the map distribution and ``sigma_data``);
:class:`NonIsotropicPretrainedPrior` loads it strictly with the same loaders.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .base import Prior, _counted
from .nonisotropic import NonIsotropicPath
from .paths import NoisePath, VPPath, path_from_config
from .pretrained import check_prior_dir, load_network, read_prior_json, resolve_prior_dir, save_prior_dir

PREDICTION = "edm"


def edm_coefficients(s_n: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per-pixel ``(c_in, c_skip, c_out)`` at native levels ``s_n``."""
    v = s_n ** 2 + sigma_data ** 2
    return v.rsqrt(), sigma_data ** 2 / v, s_n * sigma_data * v.rsqrt()


def network_terms(network: nn.Module, noise: NonIsotropicPath, u: Tensor, sigma: Tensor,
                  data_range: Sequence[float], sigma_data: float):
    """``(F, x_n, c_skip, c_out)``: the raw network output at ``u`` with level map ``sigma``
    ([0, 1] units) and the native quantities ``D_n = c_skip x_n + c_out F`` is made of."""
    lo, hi = data_range
    span = hi - lo
    sigma = torch.as_tensor(sigma).to(u).expand_as(u)
    x_n, s_n = lo + span * u, span * sigma
    c_in, c_skip, c_out = edm_coefficients(s_n, sigma_data)
    level = noise.log_level(sigma)
    out = network(torch.cat([c_in * x_n, level], 1), 1000 * level.flatten(1).mean(1))
    if out.shape != u.shape:
        raise ValueError(f"non-isotropic network output has shape {tuple(out.shape)}, expected {tuple(u.shape)} "
                         f"(it takes 2 C input channels: the image and its level map)")
    return out, x_n, c_skip, c_out


class NonIsotropicNetworkPrior(Prior):
    """A network ``F(x_in (B, 2C, H, W), t_in (B,))`` as a non-isotropic denoiser (module docstring).

    Args:
        network: the module (e.g. ``DiffusersUNet(in_channels=2 C, out_channels=C)``).
        noise: the non-isotropic path it was trained on ([0, 1] units).
        path: the isotropic path of :meth:`denoise`, in native units (default ``VPPath()``).
        image_shape: ``(C, H, W)``.
        data_range: native range of the network's data.
        sigma_data: EDM's data std in native units (0.5 for [-1, 1]).
        clip_x0: clamp estimates to [0, 1].
    """

    def __init__(self, network: nn.Module, noise: Optional[NonIsotropicPath] = None,
                 path: Optional[NoisePath] = None, image_shape: Sequence[int] = (1, 32, 32),
                 data_range: Sequence[float] = (-1.0, 1.0), sigma_data: float = 0.5, clip_x0: bool = False):
        lo, hi = (float(v) for v in data_range)
        if not hi > lo:
            raise ValueError(f"data_range must be (lo, hi) with hi > lo, got {tuple(data_range)}")
        native = path if path is not None else VPPath()
        super().__init__(native.scaled(1.0 / (hi - lo)), image_shape, data_mean=0.5,
                         data_var=1.0 / (hi - lo) ** 2)
        self.network, self.native_path = network, native
        self.noise = noise if noise is not None else NonIsotropicPath()
        self.data_range, self.sigma_data, self.clip_x0 = (lo, hi), float(sigma_data), bool(clip_x0)

    def _denoise_map(self, u: Tensor, sigma: Tensor) -> Tensor:
        """``E[x0 | u = x0 + sigma ⊙ n]`` ([0, 1] units; ``sigma`` broadcastable to ``u``)."""
        self.check_images(u, "u")
        lo, hi = self.data_range
        out, x_n, c_skip, c_out = network_terms(self.network, self.noise, u, sigma, self.data_range,
                                                self.sigma_data)
        x0 = (c_skip * x_n + c_out * out - lo) / (hi - lo)
        return x0.clamp(0, 1) if self.clip_x0 else x0

    denoise_map = _counted(_denoise_map)

    def denoise(self, x_t: Tensor, t) -> Tensor:
        self.check_images(x_t, "x_t")
        a, b = self.coefficients(t, x_t)
        if float(a) <= 0:
            raise ValueError(f"{type(self).__name__}.denoise needs a(t) > 0 (got t={float(t)})")
        return self.denoise_map(x_t / a, (b / a).expand_as(x_t))

    def extra_repr(self) -> str:
        return (f"noise={self.noise!r}, path={self.native_path!r}, data_range={self.data_range}, "
                f"sigma_data={self.sigma_data}, image_shape={self.image_shape}, clip_x0={self.clip_x0}")


def save_noniso_prior_dir(directory, unet: nn.Module, noise: NonIsotropicPath, path: NoisePath,
                          data_range: Sequence[float], image_shape: Sequence[int], sigma_data: float,
                          clip_x0: bool, extra: Optional[dict] = None):
    """Write a non-isotropic prior directory (the usual files, ``prediction: "edm"``)."""
    meta = {"non_isotropic": {"noise": noise.config(), "sigma_data": float(sigma_data)}}
    meta.update(extra or {})
    return save_prior_dir(directory, unet, path, PREDICTION, data_range, image_shape, 1.0, clip_x0, meta)


class NonIsotropicPretrainedPrior(NonIsotropicNetworkPrior):
    """A non-isotropic prior from a prior directory or shipped name (strict, nothing unpickled).

    Args:
        path_or_name: directory, or shipped name (e.g. ``"faces_noniso"``).
        clip_x0: clamp estimates to [0, 1]; default from ``prior.json``.
    """

    def __init__(self, path_or_name: str, clip_x0: Optional[bool] = None):
        d = resolve_prior_dir(path_or_name)
        meta = read_prior_json(d)
        if "non_isotropic" not in meta or meta["prediction"] != PREDICTION:
            raise ValueError(f"{d} is not a non-isotropic prior (no 'non_isotropic' entry with prediction "
                             f"{PREDICTION!r} in prior.json); load it with PretrainedPrior")
        check_prior_dir(d, meta)
        network = load_network(d)
        shape = [int(s) for s in meta["image_shape"]]
        if network.in_channels != 2 * shape[0]:
            raise ValueError(f"the network in {d} takes {network.in_channels} channels; a non-isotropic "
                             f"prior of images {shape} needs {2 * shape[0]} (image + level map)")
        ni = meta["non_isotropic"]
        super().__init__(network, NonIsotropicPath.from_config(ni["noise"]), path_from_config(meta["path"]),
                         shape, meta["data_range"], ni["sigma_data"],
                         meta.get("clip_x0", False) if clip_x0 is None else clip_x0)
        self.source = str(d)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
