"""Interpolation between codes: spherical for Gaussian codes (x_T, z_sem), as in DDIM/DiffAE."""

from __future__ import annotations

import torch


def slerp(a: torch.Tensor, b: torch.Tensor, w: float) -> torch.Tensor:
    """Spherical interpolation per sample (over all non-batch dims); falls back to lerp for parallel vectors."""
    af, bf = a.flatten(1), b.flatten(1)
    cos = (af * bf).sum(1) / (af.norm(dim=1) * bf.norm(dim=1)).clamp_min(1e-12)
    theta = torch.arccos(cos.clamp(-1, 1))
    sin = torch.sin(theta)
    small = sin.abs() < 1e-6
    wa = torch.where(small, 1 - w * torch.ones_like(theta), torch.sin((1 - w) * theta) / sin.where(~small, 1))
    wb = torch.where(small, w * torch.ones_like(theta), torch.sin(w * theta) / sin.where(~small, 1))
    shape = (-1,) + (1,) * (a.ndim - 1)
    return wa.view(shape) * a + wb.view(shape) * b
