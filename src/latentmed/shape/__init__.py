"""3D shape refinement of vertebra masks: LSD-EBM (Wang et al., DGM4MICCAI 2024) with VAE and LEBM baselines.

- :mod:`latentmed.shape.models`: :class:`ShapeVAE`, :class:`ShapeLEBM`, :class:`LSDEBM` and their configs;
- :mod:`latentmed.shape.volumes`: NIfTI masks, isotropic resampling, cube crops, augmentation,
  thick-slice simulation;
- :mod:`latentmed.shape.training`: training through :func:`latentmed.train.train`;
- :mod:`latentmed.shape.evaluate`: refinement, the six-metric table, latent variance per reverse step.
"""

from latentmed.shape.langevin import langevin
from latentmed.shape.models import (
    LSDEBM,
    LEBMConfig,
    LSDEBMConfig,
    ShapeLEBM,
    ShapeVAE,
    VAEConfig,
    load_shape_model,
    model_class,
    shape_loss,
)
from latentmed.shape.volumes import augment_mask, crop_to_cube, load_mask, simulate_thick_slices

__all__ = ["LSDEBM", "LEBMConfig", "LSDEBMConfig", "ShapeLEBM", "ShapeVAE", "VAEConfig", "augment_mask",
           "crop_to_cube", "langevin", "load_mask", "load_shape_model", "model_class", "shape_loss",
           "simulate_thick_slices"]
