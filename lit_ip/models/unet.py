"""Diffusers ``UNet2DModel`` as a prior network, and strict loading of diffusers directories.

:class:`DiffusersUNet` is the network ``(x_native, t_in) -> prediction`` that
:class:`lit_ip.priors.network.NetworkPrior` wraps: it calls a ``UNet2DModel`` and
returns its ``.sample``. A diffusers model directory is ``config.json`` +
``diffusion_pytorch_model.safetensors``; :func:`load_unet_dir` reads one without
unpickling anything and with strict key/shape checks (:mod:`lit_ip.models.checkpoints`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence, Union

from torch import Tensor, nn

from . import recorded_config
from .checkpoints import CheckpointError, load_checkpoint

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"


def make_unet(in_channels: int = 3, out_channels: Optional[int] = None, sample_size: int = 32,
              block_out_channels: Sequence[int] = (32, 64, 64), layers_per_block: int = 1,
              attention_levels: Sequence[bool] = (), mid_attention: bool = False,
              norm_num_groups: int = 8, attention_head_dim: int = 8, dropout: float = 0.0):
    """A small ``UNet2DModel``. ``attention_levels[i]`` adds self-attention at resolution level ``i``
    (default none: the network is then fully convolutional and runs on any size divisible by
    ``2 ** (len(block_out_channels) - 1)``)."""
    from diffusers import UNet2DModel

    n = len(block_out_channels)
    att = list(attention_levels) + [False] * (n - len(attention_levels))
    if len(att) != n:
        raise ValueError(f"attention_levels has {len(attention_levels)} entries for {n} levels")
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in att)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(att))
    return UNet2DModel(sample_size=sample_size, in_channels=in_channels,
                       out_channels=out_channels or in_channels,
                       block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
                       down_block_types=down, up_block_types=up, add_attention=mid_attention,
                       norm_num_groups=norm_num_groups, attention_head_dim=attention_head_dim,
                       dropout=dropout)


class DiffusersUNet(nn.Module):
    """Adapter ``forward(x, t) = unet(x, t).sample`` around a diffusers ``UNet2DModel``.

    Construct from architecture arguments (see :func:`make_unet`; this is what YAML configs
    use), or wrap an existing model with :meth:`wrap`. ``out_channels`` below the model's output
    channels keeps the first ones (learned-sigma models output ``2 C``).
    """

    def __init__(self, in_channels: int = 3, out_channels: Optional[int] = None, sample_size: int = 32,
                 block_out_channels: Sequence[int] = (32, 64, 64), layers_per_block: int = 1,
                 attention_levels: Sequence[bool] = (), mid_attention: bool = False,
                 norm_num_groups: int = 8, attention_head_dim: int = 8, dropout: float = 0.0):
        super().__init__()
        self.unet = make_unet(in_channels, out_channels, sample_size, block_out_channels,
                              layers_per_block, attention_levels, mid_attention, norm_num_groups,
                              attention_head_dim, dropout)
        self.keep_channels = None

    @classmethod
    def wrap(cls, unet: nn.Module, keep_channels: Optional[int] = None) -> "DiffusersUNet":
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        self.unet, self.keep_channels = unet, keep_channels
        return self

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def in_channels(self) -> int:
        return int(self.unet.config.in_channels)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        out = self.unet(x, t).sample
        return out if self.keep_channels is None else out[:, :self.keep_channels]


def load_unet_dir(directory: Union[str, os.PathLike]):
    """A ``UNet2DModel`` from a diffusers directory (``config.json`` + safetensors), loaded strictly."""
    from diffusers import UNet2DModel

    d = Path(directory)
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (d / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{d} is not a complete diffusers UNet directory: missing {', '.join(missing)}")
    config = json.loads((d / CONFIG_FILE).read_text())
    cls_name = config.get("_class_name", "UNet2DModel")
    if cls_name != "UNet2DModel":
        raise CheckpointError(f"{d / CONFIG_FILE} describes a {cls_name}; only UNet2DModel is supported")
    unet = UNet2DModel.from_config(config)
    load_checkpoint(unet, d / WEIGHTS_FILE)  # first: a config that changes shapes lists them
    recorded_config.check(d / WEIGHTS_FILE, "unet", recorded_config.unet_fields(config), d / CONFIG_FILE)
    return unet.eval()


def save_unet_dir(unet: nn.Module, directory: Union[str, os.PathLike], record: Optional[dict] = None) -> None:
    """Write ``config.json`` + ``diffusion_pytorch_model.safetensors`` (fp32, contiguous); the
    weights record the config (and ``record``, e.g. the prior's fields) for
    :mod:`lit_ip.models.recorded_config`."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    import diffusers

    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(unet.config).items()
              if not k.startswith("_")}
    config.update(_class_name=type(unet).__name__, _diffusers_version=diffusers.__version__)
    (d / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    state = {k: v.detach().float().contiguous().cpu() for k, v in unet.state_dict().items()}
    meta = recorded_config.metadata({"unet": recorded_config.unet_fields(config), **(record or {})})
    save_file(state, str(d / WEIGHTS_FILE), metadata=meta)
