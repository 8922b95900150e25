"""Skip-connected MLP denoiser over z_sem: DiffAE's latent DDIM (Preechakul et al. 2022, Sec. 4, Table 8)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from latentmed.nn.layers import timestep_embedding


@dataclass
class LatentMLPConfig:
    """MLP with the input z concatenated to every hidden layer; time via AdaGN-like scale/shift."""

    z_dim: int = 512
    hidden: int = 2048
    num_layers: int = 10
    time_dim: int = 64
    dropout: float = 0.0


class LatentMLP(nn.Module):
    """``net(z_t, t) -> output`` for the latent diffusion over normalised z_sem."""

    def __init__(self, cfg: LatentMLPConfig):
        super().__init__()
        self.cfg = cfg
        self.time_embed = nn.Sequential(nn.Linear(cfg.time_dim, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, cfg.hidden))
        self.layers = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.time_proj = nn.ModuleList()
        for i in range(cfg.num_layers):  # layer 0 sees z_t; later ones [h, z_t] (DiffAE's skip MLP)
            self.layers.append(nn.Linear(cfg.z_dim if i == 0 else cfg.hidden + cfg.z_dim, cfg.hidden))
            self.norms.append(nn.LayerNorm(cfg.hidden))
            self.time_proj.append(nn.Linear(cfg.hidden, 2 * cfg.hidden))
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden + cfg.z_dim, cfg.z_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        t = torch.as_tensor(t, device=z_t.device, dtype=torch.float32)
        if t.ndim == 0:
            t = t.expand(z_t.shape[0])
        emb = self.time_embed(timestep_embedding(t, self.cfg.time_dim))
        h = z_t
        for i, (layer, norm, tp) in enumerate(zip(self.layers, self.norms, self.time_proj)):
            h = layer(h if i == 0 else torch.cat([h, z_t], dim=1))
            scale, shift = tp(emb).chunk(2, dim=1)
            h = self.dropout(torch.nn.functional.silu(norm(h) * (1 + scale) + shift))
        return self.out(torch.cat([h, z_t], dim=1))
