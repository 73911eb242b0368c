"""Building blocks of the ADM / guided-diffusion UNet (Dhariwal & Nichol 2021).

Written for this project from the published architecture description; attribute
names (``in_layers``, ``emb_layers``, ``out_layers``, ``skip_connection``, ``qkv``,
``proj_out``, ``op``, ``conv``) are chosen so that state-dict keys equal those of the
public checkpoints. Parameter-free sub-modules (activations, resampling inside
residual blocks) sit at the positions the checkpoints expect.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with 32 groups evaluated in float32 and cast back (safe under fp16/bf16)."""

    def __init__(self, channels: int, groups: int = 32):
        if channels % groups:
            raise ValueError(f"GroupNorm32 needs channels divisible by {groups}, got {channels}")
        super().__init__(groups, channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(),
                            self.eps).to(x.dtype)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding ``[cos(t w_k), sin(t w_k)]``, ``w_k = max_period^(-k / (dim/2))``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32,
                                                           device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class TimestepBlock(nn.Module):
    """A block whose forward takes the timestep embedding as a second argument."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class EmbedSequential(nn.Sequential):
    """``nn.Sequential`` passing the embedding to the children that take one."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, TimestepBlock) else layer(x)
        return x


class Upsample(nn.Module):
    """Nearest-neighbour x2, then an optional 3x3 conv (key ``conv``)."""

    def __init__(self, channels: int, use_conv: bool, out_channels: Optional[int] = None):
        super().__init__()
        self.channels = channels
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    """Stride-2 3x3 conv (key ``op``) or 2x2 average pooling."""

    def __init__(self, channels: int, use_conv: bool, out_channels: Optional[int] = None):
        super().__init__()
        if use_conv:
            self.op = nn.Conv2d(channels, out_channels or channels, 3, stride=2, padding=1)
        else:
            if out_channels not in (None, channels):
                raise ValueError("average-pool downsampling cannot change the channel count")
            self.op = nn.AvgPool2d(2, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class ResBlock(TimestepBlock):
    """Residual block conditioned on the timestep embedding ``e``:

        h = conv(SiLU(norm(x)))                     (resampled between SiLU and conv if up/down)
        scale-shift norm:  h = conv(drop(SiLU(norm(h) * (1 + s) + b))),  [s, b] = Linear(SiLU(e))
        otherwise:         h = conv(drop(SiLU(norm(h + Linear(SiLU(e))))))
        out = skip(x) + h
    """

    def __init__(self, channels: int, emb_channels: int, out_channels: Optional[int] = None,
                 use_scale_shift_norm: bool = False, up: bool = False, down: bool = False,
                 dropout: float = 0.0, use_conv_skip: bool = False):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(GroupNorm32(channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels))
        self.out_layers = nn.Sequential(GroupNorm32(out_channels), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        if out_channels == channels:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, out_channels, 3 if use_conv_skip else 1,
                                             padding=1 if use_conv_skip else 0)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        if self.updown:
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).to(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Spatial self-attention with a residual: ``x + proj_out(attn(qkv(norm(x))))``.

    ``qkv`` and ``proj_out`` are 1x1 ``Conv1d`` over the flattened positions. The legacy
    order (``legacy=True``, QKVAttentionLegacy) splits heads first, i.e. the 3C qkv channels
    are laid out as ``[head][q|k|v][ch]``; the new order splits q/k/v first
    (``[q|k|v][head][ch]``). Attention weights ``softmax(q^T k / sqrt(ch))``.
    """

    def __init__(self, channels: int, num_heads: int = 1, num_head_channels: int = -1,
                 legacy: bool = True):
        super().__init__()
        if num_head_channels == -1:
            self.num_heads = num_heads
        else:
            if channels % num_head_channels:
                raise ValueError(f"attention channels {channels} not divisible by "
                                 f"num_head_channels {num_head_channels}")
            self.num_heads = channels // num_head_channels
        self.legacy = legacy
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        flat = x.reshape(B, C, H * W)
        qkv = self.qkv(self.norm(flat))                           # (B, 3C, T)
        heads, ch, T = self.num_heads, C // self.num_heads, H * W
        if self.legacy:
            q, k, v = qkv.reshape(B, heads, 3 * ch, T).split(ch, dim=2)
        else:
            q, k, v = (z.reshape(B, heads, ch, T) for z in qkv.chunk(3, dim=1))
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2),
                                             v.transpose(-1, -2))  # (B, heads, T, ch)
        out = out.transpose(-1, -2).reshape(B, C, T)
        return (flat + self.proj_out(out)).reshape(B, C, H, W)
