"""3D shape refinement of vertebra masks: LSD-EBM (Wang et al., DGM4MICCAI 2024) with VAE and LEBM baselines.

- :mod:`latentmed.shape.models`: :class:`ShapeVAE`, :class:`ShapeLEBM`, :class:`LSDEBM` by name (the classes live
  in :mod:`~latentmed.shape.baselines` and :mod:`~latentmed.shape.lsd_ebm`, shared pieces in
  :mod:`~latentmed.shape.base`, configs and the LSD-EBM reference recipe in :mod:`~latentmed.shape.configs`);
- :mod:`latentmed.shape.controls`: does LSD-EBM's chain do anything (energy off, round trip, direction, t sweep);
- :mod:`latentmed.shape.objectives`: their training losses ``(model, batch, step) -> loss[B]``;
- :mod:`latentmed.shape.volumes`: NIfTI masks, isotropic resampling, cube crops, augmentation,
  thick-slice simulation;
- :mod:`latentmed.shape.training`: training through :func:`latentmed.train.train`;
- :mod:`latentmed.shape.evaluate`: refinement, the six-metric table, latent variance per reverse step;
- :mod:`latentmed.shape.workflow`: the ``latentmed shape`` commands (refine, sample, evaluate, degrade folders).
"""

from latentmed.shape.langevin import langevin
from latentmed.shape.models import (
    LSDEBM,
    LEBMConfig,
    LSDEBMConfig,
    MaskNetConfig,
    ShapeLEBM,
    ShapeVAE,
    VAEConfig,
    load_shape_model,
    model_class,
)
from latentmed.shape.objectives import ShapeObjectiveConfig, shape_objective
from latentmed.shape.volumes import augment_mask, crop_to_cube, load_mask, simulate_thick_slices

__all__ = ["LSDEBM", "LEBMConfig", "LSDEBMConfig", "MaskNetConfig", "ShapeLEBM", "ShapeObjectiveConfig", "ShapeVAE",
           "VAEConfig", "augment_mask", "crop_to_cube", "langevin", "load_mask", "load_shape_model", "model_class",
           "shape_objective", "simulate_thick_slices"]
