"""Architectures for 3D masks: conv encoder to a Gaussian latent, conv decoder, energy MLPs.

- :class:`MaskEncoder3d`: strided 3D convs down to 4^3, then SEPARATE linear heads for the
  mean and the log-variance of q(z|x) (the LSD-EBM reference code uses one linear layer for
  both, so its log-variance is softplus(mean): a bug only its recipe copies, ``posterior="shared"``).
- :class:`MaskDecoder3d`: linear to 4^3 features, transposed 3D convs up to the cube,
  Bernoulli logits (one channel).
- :class:`EnergyMLP`: scalar energy E(z) or E(z, t) with spectral-norm linear layers and a
  sinusoidal time embedding (Yu et al., ICML 2022, latent diffusion EBM);
- :class:`RawTimeEnergyMLP`: the LSD-EBM reference code's plain MLP energy on ``[z, t]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from latentmed.errors import expect
from latentmed.nn.layers import timestep_embedding


def _levels(size: int) -> int:
    expect(size >= 8 and (size & (size - 1)) == 0,
           f"image_size={size}: expected a power of two >= 8 (e.g. 32, 64, 128).")
    return int(math.log2(size // 4))


def _channels(base: int, max_ch: int, n: int) -> list[int]:
    return [min(base * 2**i, max_ch) for i in range(n + 1)]


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class MaskEncoder3d(nn.Module):
    """x [B,1,S,S,S] -> (mean [B,d], logvar [B,d]) by stride-2 convs from S down to 4^3."""

    def __init__(self, image_size: int, latent_dim: int, base_channels: int = 16, max_channels: int = 128) -> None:
        super().__init__()
        n = _levels(image_size)
        ch = [1] + _channels(base_channels, max_channels, n - 1)
        layers: list[nn.Module] = []
        for i in range(n):
            layers += [nn.Conv3d(ch[i], ch[i + 1], 4, stride=2, padding=1), _norm(ch[i + 1]), nn.SiLU()]
        self.features = nn.Sequential(*layers, nn.Flatten())
        flat = ch[n] * 4**3
        self.mean_head = nn.Linear(flat, latent_dim)
        self.logvar_head = nn.Linear(flat, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mean_head(h), self.logvar_head(h).clamp(-12.0, 6.0)


class MaskDecoder3d(nn.Module):
    """z [B,d] -> Bernoulli logits [B,1,S,S,S] by transposed stride-2 convs from 4^3 up to S."""

    def __init__(self, image_size: int, latent_dim: int, base_channels: int = 16, max_channels: int = 128) -> None:
        super().__init__()
        n = _levels(image_size)
        ch = _channels(base_channels, max_channels, n - 1)[::-1] + [1]
        self.top = ch[0]
        self.fc = nn.Linear(latent_dim, ch[0] * 4**3)
        layers: list[nn.Module] = []
        for i in range(n):
            layers += [_norm(ch[i]), nn.SiLU(), nn.ConvTranspose3d(ch[i], ch[i + 1], 4, stride=2, padding=1)]
        self.net = nn.Sequential(*layers)
        # Start at a background-heavy prior (5% foreground) so early steps do not waste time on the bias.
        nn.init.constant_(layers[-1].bias, math.log(0.05 / 0.95))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(z.shape[0], self.top, 4, 4, 4))


class EnergyMLP(nn.Module):
    """Scalar energy E(z[, t]) [B]: spectral-norm MLP with GELU; ``time_dim > 0`` adds a time embedding.

    Spectral norm on the input and hidden layers (smoothness, as Yu et al.); the output layer is
    plain, so the Lipschitz constant of E is learned (its output weight norm).

    The time embedding (sinusoidal -> SN-linear -> GELU -> SN-linear) is added to every hidden
    layer, as in Yu et al.'s latent diffusion EBM.
    """

    def __init__(self, latent_dim: int, hidden: int = 200, layers: int = 3, time_dim: int = 0,
                 use_spectral_norm: bool = True) -> None:
        super().__init__()
        sn = spectral_norm if use_spectral_norm else (lambda m: m)
        self.time_dim = time_dim
        self.inp = sn(nn.Linear(latent_dim, hidden))
        self.hidden = nn.ModuleList(sn(nn.Linear(hidden, hidden)) for _ in range(layers - 1))
        # The output layer is NOT normalised: with every layer normalised E would be 1-Lipschitz and
        # could not confine latents whose scale is ~10 (the chain's variance then grows each step).
        self.out = nn.Linear(hidden, 1)
        self.act = nn.GELU()
        if time_dim:
            self.time_mlp = nn.Sequential(sn(nn.Linear(time_dim, hidden)), nn.GELU(), sn(nn.Linear(hidden, hidden)))

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """Embedding of steps ``t`` [B] -> [B, hidden]; compute once per Langevin chain and pass as ``temb``."""
        return self.time_mlp(timestep_embedding(t, self.time_dim, scale=1.0))

    def forward(self, z: torch.Tensor, t: torch.Tensor | None = None, temb: torch.Tensor | None = None
                ) -> torch.Tensor:
        if self.time_dim and temb is None:
            expect(t is not None, "EnergyMLP with a time embedding needs the step t.")
            temb = self.time_embedding(t)
        temb = temb if self.time_dim else 0.0
        h = self.act(self.inp(z) + temb)
        for layer in self.hidden:
            h = self.act(layer(h) + temb)
        return self.out(h).squeeze(-1)


class RawTimeEnergyMLP(nn.Module):
    """The LSD-EBM reference code's energy ``E_func``: a plain GELU MLP on ``[z, t]`` with the raw step t
    (model_Unet_lsdebm.py:567-596: Linear(d+1, h), GELU, ``layers - 1`` x (Linear(h, h), GELU), Linear(h, 1);
    no spectral norm, no batch norm at the defaults ``prior_bn=False``, ``ebm_num_layers=1``, h=1000,
    train_lsd_ebm_vert.py:228-230)."""

    def __init__(self, latent_dim: int, hidden: int = 1000, layers: int = 2) -> None:
        super().__init__()
        expect(layers >= 1, f"energy_layers={layers}: expected >= 1 hidden layer.")
        widths = [latent_dim + 1] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            blocks += [nn.Linear(a, b), nn.GELU()]
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, 1))

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """The raw step as a float column ``[B, 1]`` (the reference concatenates ``t.view(-1, 1)``)."""
        return t.reshape(-1, 1).float()

    def forward(self, z: torch.Tensor, t: torch.Tensor | None = None, temb: torch.Tensor | None = None
                ) -> torch.Tensor:
        if temb is None:
            expect(t is not None, "RawTimeEnergyMLP needs the step t.")
            temb = self.time_embedding(t)
        return self.net(torch.cat([z, temb.to(z.dtype)], 1)).squeeze(-1)
