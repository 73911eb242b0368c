"""Refuse checkpoint configs the library cannot honour, naming the field.

The loaders read a noise path and a parameterisation from config files; a setting they do
not implement must stop the load rather than be read as something else:

* scheduler configs (:func:`check_scheduler_config`): variance-exploding, continuous-time
  and flow schedulers (``ScoreSdeVeScheduler``, ``KarrasVeScheduler``, EDM, flow matching,
  ...) are not a DDPM beta grid; ``rescale_betas_zero_snr: true`` changes the betas;
  ``timestep_type: continuous`` is not the discrete training grid; ``num_train_timesteps``
  under :data:`MIN_TRAIN_STEPS` is a sampling step count, not a DDPM training grid (the
  sampler's steps are set on the method, ``num_steps``); a config that is not a JSON object.
* UNet configs (:func:`check_unet_config`): class-conditional networks (``num_class_embeds``,
  ``class_embed_type``) need labels that priors do not pass.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..models.checkpoints import CheckpointError

#: diffusers schedulers whose training grid is the discrete DDPM one (betas over num_train_timesteps)
DDPM_SCHEDULERS = frozenset({
    "DDPMScheduler", "DDIMScheduler", "DDPMParallelScheduler", "DDIMParallelScheduler", "PNDMScheduler",
    "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler", "DEISMultistepScheduler",
    "UniPCMultistepScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
    "HeunDiscreteScheduler", "LMSDiscreteScheduler", "KDPM2DiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler", "DDIMInverseScheduler", "DPMSolverSDEScheduler",
})
#: fewer training steps than this is taken for a sampling step count
MIN_TRAIN_STEPS = 50


def check_scheduler_config(cfg: Any, path: Path) -> dict:
    """``cfg`` (a parsed ``scheduler_config.json``) if a DDPM path can honour it, else
    :class:`CheckpointError` naming the field."""
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: a scheduler config must be a JSON object, got a JSON "
                              f"{type(cfg).__name__}")
    name = cfg.get("_class_name", "DDPMScheduler")
    if name not in DDPM_SCHEDULERS:
        kind = ("a variance-exploding / continuous-time scheduler" if "Ve" in name or "EDM" in name
                or "Sde" in name else "a flow-matching scheduler" if "FlowMatch" in name
                else "not a scheduler with a DDPM training grid")
        raise CheckpointError(f"{path}: _class_name {name!r} is {kind}; only DDPM-grid schedulers are "
                              f"supported (DDPMScheduler, DDIMScheduler, PNDMScheduler and the discrete "
                              f"Euler / DPM-Solver / UniPC / Heun / LMS samplers over it)")
    if cfg.get("rescale_betas_zero_snr"):
        raise CheckpointError(f"{path}: rescale_betas_zero_snr: true (zero terminal SNR betas) is not "
                              f"implemented; the network would be run on the wrong noise levels")
    if cfg.get("timestep_type", "discrete") != "discrete":
        raise CheckpointError(f"{path}: timestep_type {cfg['timestep_type']!r} is not supported "
                              f"(only the discrete DDPM grid)")
    steps = cfg.get("num_train_timesteps", 1000)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < MIN_TRAIN_STEPS:
        raise CheckpointError(f"{path}: num_train_timesteps {steps!r} is not a DDPM training grid "
                              f"(an integer >= {MIN_TRAIN_STEPS}; trained models use ~1000). Sampling "
                              f"steps are set on the method (num_steps), not here")
    return cfg


def check_unet_config(cfg: Any, path: Path) -> dict:
    """``cfg`` (a parsed UNet ``config.json``) unless it needs inputs priors do not give."""
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: a UNet config must be a JSON object, got a JSON {type(cfg).__name__}")
    for field in ("num_class_embeds", "class_embed_type"):
        if cfg.get(field) is not None:
            raise CheckpointError(f"{path}: {field} = {cfg[field]!r}: a class-conditional UNet needs class "
                                  f"labels, which lit_ip priors do not pass (only unconditional models)")
    return cfg
