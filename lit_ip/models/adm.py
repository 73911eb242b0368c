"""The ADM / OpenAI guided-diffusion UNet (Dhariwal & Nichol 2021), written for this project.

Its state-dict keys and shapes equal those of the public checkpoints (``time_embed.0.weight``,
``input_blocks.0.0.weight``, ``middle_block.1.qkv.weight``, ``output_blocks.*``,
``out.2.weight``, ...), so ``ffhq_10m.pt`` (DPS, DAPS, DiffPIR, DMPS, RED-diff) and
``256x256_diffusion_uncond.pt`` load with strict keys. Network in ``[-1, 1]`` data units,
called as ``net(x, t)`` with the DDPM step index ``t`` in ``[0, 999]``; a learned-sigma
model returns ``2C`` channels ``[eps, v]`` (:class:`EpsHalf` keeps ``eps``).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .adm_blocks import AttentionBlock, Downsample, EmbedSequential, GroupNorm32, ResBlock, Upsample, \
    timestep_embedding

#: published configurations (guided-diffusion ``script_util`` flags; resolutions in pixels)
PRESETS: dict[str, dict] = {
    # DPS / DAPS / DiffPIR / DMPS FFHQ-256 model (``ffhq_10m.pt``, trained by Choi et al. 2021)
    "ffhq_10m": dict(image_size=256, model_channels=128, num_res_blocks=1,
                     channel_mult=(1, 1, 2, 2, 4, 4), attention_resolutions=(16,), num_heads=4,
                     num_head_channels=64, learn_sigma=True, use_scale_shift_norm=True,
                     resblock_updown=True, use_new_attention_order=False),
    # ADM ImageNet-256 unconditional (``256x256_diffusion_uncond.pt``)
    "imagenet256_uncond": dict(image_size=256, model_channels=256, num_res_blocks=2,
                               channel_mult=(1, 1, 2, 2, 4, 4), attention_resolutions=(32, 16, 8),
                               num_heads=4, num_head_channels=64, learn_sigma=True,
                               use_scale_shift_norm=True, resblock_updown=True,
                               use_new_attention_order=False),
}

#: the noise schedule the presets were trained with (arguments of ``VPPath``)
PRESET_SCHEDULES: dict[str, dict] = {name: dict(num_train_steps=1000, schedule="linear")
                                     for name in PRESETS}


def default_channel_mult(image_size: int) -> tuple[float, ...]:
    """guided-diffusion's defaults by image size."""
    table = {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4),
             64: (1, 2, 3, 4)}
    if image_size not in table:
        raise ValueError(f"no default channel_mult for image_size {image_size}; pass channel_mult")
    return table[image_size]


class ADMUNet(nn.Module):
    """guided-diffusion ``UNetModel``.

    Args:
        image_size: training resolution (only used to place attention layers).
        in_channels: image channels.
        model_channels: base width.
        num_res_blocks: residual blocks per level.
        attention_resolutions: feature-map sizes (pixels, e.g. ``(32, 16, 8)``) with attention.
        channel_mult: width multipliers per level (None: guided-diffusion default by size).
        learn_sigma: output ``2 * in_channels`` channels (eps and the variance interpolation).
        num_heads / num_head_channels / num_heads_upsample: attention heads (head width wins
            when given).
        use_scale_shift_norm: FiLM-style conditioning in residual blocks.
        resblock_updown: resample with residual blocks instead of conv / pooling layers.
        use_new_attention_order: split q/k/v before heads (False = legacy order of the checkpoints).
        conv_resample: learned conv in the plain resampling layers.
        num_classes: class-conditional model (adds ``label_emb``).
        dropout: dropout rate in residual blocks.
    """

    def __init__(self, image_size: int = 256, in_channels: int = 3, model_channels: int = 128,
                 num_res_blocks: int = 1, attention_resolutions: Sequence[int] = (16,),
                 channel_mult: Optional[Sequence[float]] = None, learn_sigma: bool = True,
                 num_heads: int = 4, num_head_channels: int = 64, num_heads_upsample: int = -1,
                 use_scale_shift_norm: bool = True, resblock_updown: bool = True,
                 use_new_attention_order: bool = False, conv_resample: bool = True,
                 num_classes: Optional[int] = None, dropout: float = 0.0):
        super().__init__()
        mult = tuple(channel_mult) if channel_mult else default_channel_mult(image_size)
        attn_ds = {image_size // int(r) for r in attention_resolutions}
        self.image_size, self.in_channels = int(image_size), int(in_channels)
        self.out_channels = in_channels * (2 if learn_sigma else 1)
        self.model_channels, self.num_classes = int(model_channels), num_classes
        self.num_levels = len(mult)
        self.torso_dtype = torch.float32
        emb_dim = 4 * model_channels
        heads_up = num_heads if num_heads_upsample == -1 else num_heads_upsample

        def res(ch_in, ch_out=None, **kw):
            return ResBlock(ch_in, emb_dim, ch_out, use_scale_shift_norm, dropout=dropout, **kw)

        def attn(ch, heads):
            return AttentionBlock(ch, heads, num_head_channels, legacy=not use_new_attention_order)

        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(),
                                        nn.Linear(emb_dim, emb_dim))
        if num_classes is not None:
            self.label_emb = nn.Embedding(num_classes, emb_dim)

        ch = first = int(mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(in_channels, ch, 3, padding=1))])
        skip_chans, ds = [ch], 1
        for level, m in enumerate(mult):
            for _ in range(num_res_blocks):
                layers = [res(ch, int(m * model_channels))]
                ch = int(m * model_channels)
                if ds in attn_ds:
                    layers.append(attn(ch, num_heads))
                self.input_blocks.append(EmbedSequential(*layers))
                skip_chans.append(ch)
            if level != len(mult) - 1:
                down = res(ch, ch, down=True) if resblock_updown else Downsample(ch, conv_resample)
                self.input_blocks.append(EmbedSequential(down))
                skip_chans.append(ch)
                ds *= 2

        self.middle_block = EmbedSequential(res(ch), attn(ch, num_heads), res(ch))

        self.output_blocks = nn.ModuleList()
        for level, m in reversed(list(enumerate(mult))):
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skip_chans.pop(), int(m * model_channels))]
                ch = int(m * model_channels)
                if ds in attn_ds:
                    layers.append(attn(ch, heads_up))
                if level and i == num_res_blocks:
                    layers.append(res(ch, ch, up=True) if resblock_updown else Upsample(ch, conv_resample))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))

        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(),
                                 nn.Conv2d(first, self.out_channels, 3, padding=1))

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (self.num_levels - 1)

    def set_torso_dtype(self, dtype: torch.dtype) -> "ADMUNet":
        """Run the convolutions of the input/middle/output blocks in ``dtype`` (fp16/bf16
        inference). As in guided-diffusion, the time embedding, the embedding projections, the
        output head and all GroupNorms (computed in float32) keep float32 weights."""
        self.torso_dtype = dtype
        for part in (self.input_blocks, self.middle_block, self.output_blocks):
            for mod in part.modules():
                if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
                    mod.to(dtype)
        return self

    def forward(self, x: Tensor, t: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """``x`` (B, C, H, W) in [-1, 1] units, ``t`` (B,) DDPM step indices, ``y`` class labels."""
        if (y is None) != (self.num_classes is None):
            raise ValueError("pass class labels y exactly when the model is class-conditional "
                             f"(num_classes={self.num_classes})")
        if x.shape[-1] % self.downsampling_factor or x.shape[-2] % self.downsampling_factor:
            raise ValueError(f"ADMUNet needs H and W divisible by {self.downsampling_factor}, "
                             f"got {tuple(x.shape[-2:])}")
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        if y is not None:
            emb = emb + self.label_emb(y)
        h, skips = x.to(self.torso_dtype), []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h.float()).to(x.dtype)


class EpsHalf(nn.Module):
    """Adapter for learned-sigma networks: ``forward(x, t) = net(x, t)[:, :C]`` (the eps half)."""

    def __init__(self, network: nn.Module, channels: int):
        super().__init__()
        self.network, self.channels = network, int(channels)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        out = self.network(x, t)
        if out.shape[1] < self.channels:
            raise ValueError(f"network returned {out.shape[1]} channels, fewer than {self.channels}")
        return out[:, : self.channels]


def adm_from_preset(preset: Optional[str] = None, **overrides) -> ADMUNet:
    """An :class:`ADMUNet` from a named preset, with any argument overridden (e.g. for tiny tests)."""
    if preset is None:
        return ADMUNet(**overrides)
    if preset not in PRESETS:
        raise ValueError(f"unknown ADM preset {preset!r}; known: {sorted(PRESETS)}")
    return ADMUNet(**{**PRESETS[preset], **overrides})
