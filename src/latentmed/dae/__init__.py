"""Diffusion autoencoders: model, presets, objectives, latent DDIM and run training."""

from latentmed.dae.encode import encode_dataset
from latentmed.dae.latent_ddim import LatentDDIM, LatentDDIMConfig
from latentmed.dae.model import DAEConfig, DiffusionAutoencoder, slerp
from latentmed.dae.objectives import OBJECTIVES, DAEObjective, ObjectiveConfig
from latentmed.dae.presets import PRESETS, preset_config
from latentmed.dae.training import (DAERunConfig, DAETrainConfig, DataConfig, LatentTrainConfig, load_dae,
                                    load_latent_ddim, train_dae)

__all__ = [
    "DAEConfig", "DAEObjective", "DAERunConfig", "DAETrainConfig", "DataConfig", "DiffusionAutoencoder", "LatentDDIM",
    "LatentDDIMConfig", "LatentTrainConfig", "OBJECTIVES", "ObjectiveConfig", "PRESETS", "encode_dataset",
    "load_dae", "load_latent_ddim", "preset_config", "slerp", "train_dae",
]
