"""Architectures only (no training, no sampling): UNet with DiffAE conditioning, semantic encoder, latent MLP."""

from latentmed.nn.mlp import LatentMLP, LatentMLPConfig
from latentmed.nn.unet import DiffAEUNet, EncoderConfig, SemanticEncoder, UNetConfig

__all__ = ["DiffAEUNet", "EncoderConfig", "LatentMLP", "LatentMLPConfig", "SemanticEncoder", "UNetConfig"]
