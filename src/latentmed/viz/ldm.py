"""Pictures of DiNO-Diffusion runs: reconstruction and interpolation grids."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from latentmed.viz.grid import save_image_grid


@torch.no_grad()
def reconstruction_grid(ldm, images: torch.Tensor, path: str | os.PathLike, variations: int = 4, steps: int = 50,
                        guidance: float = 1.0, seed: int = 0) -> Path:
    """One row per source image: the source, then ``variations`` samples from its own tokens."""
    tokens = ldm.condition(images)
    g = torch.Generator(device=ldm.device).manual_seed(seed)
    recs = [ldm.sample(tokens, steps=steps, guidance=guidance, generator=g).cpu() for _ in range(variations)]
    rows = torch.stack([images.cpu().float(), *recs], dim=1)  # [B, 1 + V, C, H, W]
    return save_image_grid(rows.flatten(0, 1), path, nrow=1 + variations)


@torch.no_grad()
def interpolation_grid(ldm, a: torch.Tensor, b: torch.Tensor, path: str | os.PathLike, points: int = 6,
                       steps: int = 50, guidance: float = 1.0, seed: int = 0) -> Path:
    """One row per pair: source a, samples at r = 0..1 from ``(1 - r) c_a + r c_b`` (same noise), source b."""
    ta, tb = ldm.condition(a), ldm.condition(b)
    g = torch.Generator(device=ldm.device).manual_seed(seed)
    shape = (a.shape[0], ldm.config.latent_channels, ldm.config.latent_size, ldm.config.latent_size)
    x_T = torch.randn(shape, generator=g, device=ldm.device)
    cols = [a.cpu().float()]
    for r in torch.linspace(0, 1, points).tolist():
        cols.append(ldm.sample((1 - r) * ta + r * tb, steps=steps, guidance=guidance, x_T=x_T).cpu())
    cols.append(b.cpu().float())
    return save_image_grid(torch.stack(cols, dim=1).flatten(0, 1), path, nrow=points + 2)
