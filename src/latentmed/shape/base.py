"""Pieces every shape model shares: the Bernoulli likelihood, input checks, :class:`ShapeOutput`, the base
class (decoder, parameter groups, prior noise) and the amortised posterior."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from latentmed.errors import expect
from latentmed.pretrained import PretrainedMixin
from latentmed.shape.configs import LEBMConfig, LSDEBMConfig, MaskNetConfig, VAEConfig
from latentmed.shape.langevin import randn
from latentmed.shape.nets import MaskDecoder3d, MaskEncoder3d


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample Bernoulli negative log-likelihood (BCE summed over voxels) ``[B]``."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def check_masks(x: torch.Tensor, size: int, what: str = "x") -> None:
    expect(x.ndim == 5 and x.shape[1] == 1 and tuple(x.shape[2:]) == (size,) * 3,
           f"{what}: expected masks of shape [B, 1, {size}, {size}, {size}], got {tuple(x.shape)}.")


@dataclass
class ShapeOutput:
    """What ``model(x)`` returns for the training objectives (:mod:`latentmed.shape.objectives`).

    ``logits`` [B,1,S,S,S]: the decoder's Bernoulli logits of the training latents; ``mean``,
    ``logvar`` [B,d]: the posterior q(z0|x) (models with an encoder); ``energy_pos``,
    ``energy_neg`` [B]: the energy of the data-side and of the model-side latents (models with an
    energy), whose difference the energy minimises; ``energy_scale`` [B]: sigma_1 / sigma_{t+1} of
    each sample's step t (LSD-EBM; the reference code's weight of the energy term); ``latent`` [B,d]: the
    posterior sample the logits decode (the reference recipe's entropy term needs it).
    """

    logits: torch.Tensor
    mean: torch.Tensor | None = None
    logvar: torch.Tensor | None = None
    energy_pos: torch.Tensor | None = None
    energy_neg: torch.Tensor | None = None
    energy_scale: torch.Tensor | None = None
    latent: torch.Tensor | None = None


class ShapeModel(PretrainedMixin, nn.Module):
    """Shared pieces: decoder, probability decoding, parameter groups, input checks."""

    config: VAEConfig | LEBMConfig | LSDEBMConfig
    decoder: MaskDecoder3d

    def __init__(self, config: MaskNetConfig, *, encoder: bool) -> None:
        """The shared 3D conv encoder (when ``encoder``) and decoder, built in that order."""
        super().__init__()
        self.config = config
        sizes = (config.image_size, config.latent_dim, config.base_channels, config.max_channels)
        if encoder:
            self.encoder = MaskEncoder3d(*sizes)
        self.decoder = MaskDecoder3d(*sizes)

    @classmethod
    def upgrade_config(cls, meta: dict) -> dict:
        """Drop the loss weights that older model folders hold (they now live in the run's ``objective`` section)."""
        return {k: v for k, v in meta.items() if k not in ("kl_weight", "ebm_weight")}

    def parameter_groups(self) -> list[dict]:
        """Optimizer groups: autoencoder (encoder + decoder) and, when present, the energy.

        :func:`latentmed.train.train` clips each group's gradient norm on its own, so the energy's
        gradient does not scale down the autoencoder's step (the reference code uses two Adams).
        """
        energy = getattr(self, "energy", None)
        energy_ids = {id(p) for p in energy.parameters()} if energy is not None else set()
        groups = [{"params": [p for p in self.parameters() if id(p) not in energy_ids], "name": "autoencoder"}]
        if energy is not None:
            groups.append({"params": list(energy.parameters()), "name": "energy"})
        return groups

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Voxel probabilities p(x=1|z) ``[B,1,S,S,S]``."""
        return torch.sigmoid(self.decoder(z))

    def _prior_noise(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        ref = next(self.parameters())
        return randn((n, self.config.latent_dim), generator, ref)


class EncoderMixin:
    """Amortised posterior q(z0|x) = N(mean(x), exp(logvar(x))) with separate heads."""

    encoder: MaskEncoder3d

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    @staticmethod
    def reparameterize(mean: torch.Tensor, logvar: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        return mean + (0.5 * logvar).exp() * randn(mean.shape, generator, mean)


__all__ = ["EncoderMixin", "ShapeModel", "ShapeOutput", "bernoulli_nll", "check_masks"]
