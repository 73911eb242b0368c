"""Network architectures and strict checkpoint loaders."""
from .adm import ADMUNet, adm_from_preset
from .checkpoints import CheckpointError, load_checkpoint, load_strict, read_state_dict
from .unet import DiffusersUNet, make_unet

__all__ = ["ADMUNet", "adm_from_preset", "DiffusersUNet", "make_unet", "CheckpointError",
           "load_checkpoint", "load_strict", "read_state_dict"]
