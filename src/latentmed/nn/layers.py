"""Building blocks shared by the 2D/3D networks (ADM, Dhariwal & Nichol 2021; DiffAE, Preechakul et al. 2022)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def conv_nd(dims: int, *args, **kwargs) -> nn.Module:
    """``nn.Conv1d/2d/3d`` by ``dims``."""
    return {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims](*args, **kwargs)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero all parameters (ADM's zero-initialised output convs: each block starts as identity)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups, or fewer when ``channels`` is small."""
    groups = math.gcd(32, channels)
    return nn.GroupNorm(groups, channels)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0, scale: float = 1000.0) -> torch.Tensor:
    """Sinusoidal embedding of continuous ``t`` in [0, 1] (scaled by 1000 like DDPM step indices)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * scale)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class Downsample(nn.Module):
    """Strided 3x3 convolution halving every spatial size."""

    def __init__(self, channels: int, dims: int):
        super().__init__()
        self.op = conv_nd(dims, channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 upsampling followed by a 3x3 convolution."""

    def __init__(self, channels: int, dims: int):
        super().__init__()
        self.conv = conv_nd(dims, channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResBlock(nn.Module):
    """Residual block with DiffAE's conditioning (Preechakul et al. 2022, eq. 3 / Sec. 3.1).

    out = skip(x) + conv_zero(dropout(SiLU(GN(h) * (1 + t_scale) + t_shift) * (1 + z_scale)))

    ``emb`` (time) gives (t_scale, t_shift); ``z`` (z_sem) gives z_scale. Either may be absent
    (the semantic encoder uses neither).
    """

    def __init__(self, channels: int, out_channels: int, dims: int, emb_channels: int | None = None,
                 z_channels: int | None = None, dropout: float = 0.0):
        super().__init__()
        self.in_layers = nn.Sequential(group_norm(channels), nn.SiLU(), conv_nd(dims, channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels)) if emb_channels else None
        self.z_layers = nn.Sequential(nn.SiLU(), nn.Linear(z_channels, out_channels)) if z_channels else None
        self.out_norm = group_norm(out_channels)
        self.out_rest = nn.Sequential(nn.SiLU(), nn.Dropout(dropout),
                                      zero_module(conv_nd(dims, out_channels, out_channels, 3, padding=1)))
        self.skip = nn.Identity() if channels == out_channels else conv_nd(dims, channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        h = self.in_layers(x)
        h = self.out_norm(h)
        extra = (1,) * (h.ndim - 2)
        if self.emb_layers is not None and emb is not None:
            t_scale, t_shift = self.emb_layers(emb).view(h.shape[0], -1, *extra).chunk(2, dim=1)
            h = h * (1 + t_scale) + t_shift
        if self.z_layers is not None and z is not None:
            h = h * (1 + self.z_layers(z).view(h.shape[0], -1, *extra))
        return self.skip(x) + self.out_rest(h)


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all spatial positions (ADM), zero-initialised output."""

    def __init__(self, channels: int, num_heads: int = 4):
        super().__init__()
        self.num_heads = max(1, min(num_heads, channels // 8)) if channels >= 8 else 1
        self.norm = group_norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, *_unused) -> torch.Tensor:
        b, c, *spatial = x.shape
        h = self.qkv(self.norm(x).reshape(b, c, -1))  # [B, 3C, L]
        # [3, B, H, L, C/H], contiguous in the last dim: SDPA then picks its fused (flash) kernel
        # instead of the math fallback, with the same output.
        q, k, v = h.reshape(b, 3, self.num_heads, c // self.num_heads, -1).permute(1, 0, 2, 4, 3).contiguous()
        out = F.scaled_dot_product_attention(q, k, v)  # [B, H, L, C/H]
        out = out.permute(0, 1, 3, 2).reshape(b, c, -1)
        return x + self.proj(out).reshape(b, c, *spatial)
