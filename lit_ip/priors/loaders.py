"""Priors from the public checkpoints users already have (local files only; nothing downloads).

* :class:`ADMPrior` -- an OpenAI guided-diffusion / ADM state dict (``ffhq_10m.pt`` of DPS,
  DAPS, DiffPIR, DMPS, RED-diff; ``256x256_diffusion_uncond.pt``) loaded strictly into
  :class:`lit_ip.models.adm.ADMUNet`; eps half of the learned-sigma output; linear 1000-step
  DDPM path; images in [-1, 1] natively.
* :class:`DiffusersPrior` -- a diffusers ``UNet2DModel`` directory (``config.json`` + weights)
  with its DDPM ``scheduler_config.json`` (betas -> :class:`VPPath`, ``prediction_type``,
  learned variance -> first C channels).

Both read weights with :mod:`lit_ip.models.checkpoints` (safetensors, or ``torch.load`` with
``weights_only=True``) and take ``dtype`` (``float32`` | ``float16`` | ``bfloat16``, for GPU
inference) and ``compile`` (``torch.compile`` the network), both off by default.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from ..models.adm import PRESET_SCHEDULES, PRESETS, EpsHalf, adm_from_preset
from ..models.checkpoints import CheckpointError, load_checkpoint
from .config_checks import check_scheduler_config, check_unet_config
from .network import NetworkPrior
from .paths import VPPath

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: diffusers ``prediction_type`` -> lit_ip parameterisation
PREDICTION_TYPES = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}
#: diffusers ``beta_schedule`` -> ``VPPath`` schedule
BETA_SCHEDULES = {"linear": "linear", "squaredcos_cap_v2": "cosine"}


def parse_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


class CastDtype(nn.Module):
    """Run ``network`` in ``dtype``: ``forward(x, t) = network(x.to(dtype), t).to(x.dtype)``."""

    def __init__(self, network: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.network, self.dtype = network.to(dtype), dtype

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.network(x.to(self.dtype), t).to(x.dtype)


def _finish(prior: NetworkPrior, compile: bool, compile_backend: str) -> None:
    """Freeze, set eval mode and optionally compile the network of a loaded prior."""
    prior.eval()
    for p in prior.parameters():
        p.requires_grad_(False)
    if compile:
        prior.network = torch.compile(prior.network, backend=compile_backend)


class ADMPrior(NetworkPrior):
    """An ADM / guided-diffusion checkpoint as a prior.

    ``ADMPrior(checkpoint="/path/ffhq_10m.pt", preset="ffhq_10m")``; any architecture argument
    given explicitly overrides the preset (without a preset all needed ones come from
    :class:`~lit_ip.models.adm.ADMUNet`'s defaults).

    Args:
        checkpoint: path of the state dict (``.pt`` / ``.pth`` / ``.safetensors``).
        preset: ``ffhq_10m`` or ``imagenet256_uncond`` (see ``lit_ip.models.adm.PRESETS``).
        image_size, model_channels, num_res_blocks, channel_mult, attention_resolutions,
        num_heads, num_head_channels, learn_sigma, use_scale_shift_norm, resblock_updown,
        use_new_attention_order: architecture overrides (``ADMUNet`` arguments).
        num_train_steps, beta_schedule: the training noise schedule (presets: 1000, linear).
        checkpoint_key: take the weights stored under this key of the file (e.g. ``"ema"``).
        dtype: ``float32`` (default), ``float16`` or ``bfloat16`` for the UNet torso.
        compile: wrap the network in ``torch.compile`` (``compile_backend``).
    """

    def __init__(self, checkpoint: str, preset: Optional[str] = None,
                 image_size: Optional[int] = None, model_channels: Optional[int] = None,
                 num_res_blocks: Optional[int] = None, channel_mult: Optional[Sequence[float]] = None,
                 attention_resolutions: Optional[Sequence[int]] = None, num_heads: Optional[int] = None,
                 num_head_channels: Optional[int] = None, learn_sigma: Optional[bool] = None,
                 use_scale_shift_norm: Optional[bool] = None, resblock_updown: Optional[bool] = None,
                 use_new_attention_order: Optional[bool] = None, num_train_steps: Optional[int] = None,
                 beta_schedule: Optional[str] = None, checkpoint_key: Optional[str] = None,
                 dtype: str = "float32", compile: bool = False, compile_backend: str = "inductor"):
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"unknown ADM preset {preset!r}; known: {sorted(PRESETS)}")
        given = dict(image_size=image_size, model_channels=model_channels, num_res_blocks=num_res_blocks,
                     channel_mult=channel_mult, attention_resolutions=attention_resolutions,
                     num_heads=num_heads, num_head_channels=num_head_channels, learn_sigma=learn_sigma,
                     use_scale_shift_norm=use_scale_shift_norm, resblock_updown=resblock_updown,
                     use_new_attention_order=use_new_attention_order)
        unet = adm_from_preset(preset, **{k: v for k, v in given.items() if v is not None})
        load_checkpoint(unet, checkpoint, key=checkpoint_key)
        torso = parse_dtype(dtype)
        if torso != torch.float32:
            unet.set_torso_dtype(torso)
        C = unet.in_channels
        network = EpsHalf(unet, C) if unet.out_channels == 2 * C else unet
        schedule = dict(PRESET_SCHEDULES.get(preset, dict(num_train_steps=1000, schedule="linear")))
        if num_train_steps is not None:
            schedule["num_train_steps"] = int(num_train_steps)
        if beta_schedule is not None:
            schedule["schedule"] = beta_schedule
        super().__init__(network, VPPath(**schedule), "eps", (C, unet.image_size, unet.image_size),
                         (-1.0, 1.0), 1.0)
        self.checkpoint, self.preset, self.network_dtype = str(checkpoint), preset, dtype
        _finish(self, compile, compile_backend)


def _find_file(candidates: Sequence[Path], what: str, directory: Path) -> Path:
    for f in candidates:
        if f.is_file():
            return f
    raise FileNotFoundError(f"{directory} has no {what}; looked for "
                            f"{', '.join(str(c.relative_to(directory)) for c in candidates)}")


def read_scheduler_config(path: Path) -> tuple[VPPath, str, bool]:
    """(native path, prediction, learned variance) from a diffusers DDPM/DDIM scheduler config."""
    cfg = check_scheduler_config(json.loads(Path(path).read_text()), path)
    if cfg.get("trained_betas") is not None:
        raise ValueError(f"{path}: explicit trained_betas are not supported (only linear and cosine "
                         f"DDPM schedules)")
    kind = cfg.get("beta_schedule", "linear")
    if kind not in BETA_SCHEDULES:
        raise ValueError(f"{path}: beta_schedule {kind!r} is not supported; supported: {sorted(BETA_SCHEDULES)}")
    pred = cfg.get("prediction_type", "epsilon")
    if pred not in PREDICTION_TYPES:
        raise ValueError(f"{path}: prediction_type {pred!r} is not supported; supported: "
                         f"{sorted(PREDICTION_TYPES)}")
    path_ = VPPath(int(cfg.get("num_train_timesteps", 1000)), BETA_SCHEDULES[kind],
                   float(cfg.get("beta_start", 1e-4)), float(cfg.get("beta_end", 2e-2)))
    learned = str(cfg.get("variance_type", "fixed_small")).startswith("learned")
    return path_, PREDICTION_TYPES[pred], learned


class DiffusersPrior(NetworkPrior):
    """A diffusers ``UNet2DModel`` directory with its scheduler config, as a prior.

    Accepted layouts: a model directory (``config.json``, ``diffusion_pytorch_model.safetensors``
    or ``.bin``, ``scheduler_config.json``) or a pipeline directory (``unet/`` and
    ``scheduler/``). ``.bin`` weights are read with ``weights_only=True``.

    Args:
        directory: the local directory.
        dtype: ``float32`` (default), ``float16`` or ``bfloat16``.
        compile: wrap the network in ``torch.compile`` (``compile_backend``).
        data_range: native data range of the model (diffusers DDPM models: ``[-1, 1]``).
    """

    def __init__(self, directory: str, dtype: str = "float32", compile: bool = False,
                 compile_backend: str = "inductor", data_range: Sequence[float] = (-1.0, 1.0)):
        from diffusers import UNet2DModel

        from ..models.unet import DiffusersUNet

        d = Path(directory).expanduser()
        if not d.is_dir():
            raise FileNotFoundError(f"diffusers model directory {d} does not exist")
        unet_dir = d / "unet" if (d / "unet" / "config.json").is_file() else d
        config_file = _find_file([unet_dir / "config.json"], "UNet config.json", d)
        weights = _find_file([unet_dir / "diffusion_pytorch_model.safetensors",
                              unet_dir / "diffusion_pytorch_model.bin"], "UNet weights", d)
        sched_file = _find_file([d / "scheduler_config.json", d / "scheduler" / "scheduler_config.json",
                                 unet_dir / "scheduler_config.json"], "scheduler_config.json", d)
        config = check_unet_config(json.loads(config_file.read_text()), config_file)
        if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
            raise CheckpointError(f"{config_file} describes a {config['_class_name']}; only UNet2DModel "
                                  f"is supported")
        unet = UNet2DModel.from_config(config)
        load_checkpoint(unet, weights)
        path, prediction, learned = read_scheduler_config(sched_file)
        C = int(unet.config.in_channels)
        if learned and int(unet.config.out_channels) != 2 * C:
            raise ValueError(f"{sched_file} says the variance is learned, but the UNet outputs "
                             f"{unet.config.out_channels} channels for {C} input channels")
        network = DiffusersUNet.wrap(unet, keep_channels=C if learned else None)
        torch_dtype = parse_dtype(dtype)
        if torch_dtype != torch.float32:
            network = CastDtype(network, torch_dtype)
        size = unet.config.sample_size
        hw = (size, size) if isinstance(size, int) else tuple(size)
        super().__init__(network, path, prediction, (C, *hw), data_range, 1.0)
        self.directory, self.network_dtype = str(d), dtype
        _finish(self, compile, compile_backend)
