"""The shape models by name: VAE, LEBM and LSD-EBM for 3D binary masks (Wang et al., DGM4MICCAI 2024).

All three share the interface used by training, refinement and evaluation:

- ``model(x) -> ShapeOutput``: what the training objective needs from high-quality masks ``x``
  [B,1,S,S,S] in {0,1} (decoder logits, posterior moments, energies of positive and negative
  latents, drawn by the model's own Langevin chains); the per-sample losses live in
  :mod:`latentmed.shape.objectives`;
- ``model.refine(x_coarse) -> probabilities`` [B,1,S,S,S] (Algorithm 2; threshold at 0.5);
- ``model.sample(n) -> probabilities`` (Algorithm 3 for LSD-EBM).

Configs: :mod:`latentmed.shape.configs`; shared pieces: :mod:`latentmed.shape.base`; the baselines:
:mod:`latentmed.shape.baselines`; LSD-EBM: :mod:`latentmed.shape.lsd_ebm`.
"""

from __future__ import annotations

from latentmed.errors import expect
from latentmed.shape.base import ShapeModel, ShapeOutput, bernoulli_nll
from latentmed.shape.baselines import ShapeLEBM, ShapeVAE
from latentmed.shape.configs import LEBMConfig, LSDEBMConfig, MaskNetConfig, VAEConfig
from latentmed.shape.lsd_ebm import LSDEBM, lsd_noise_schedule

MODELS: dict[str, type[ShapeModel]] = {"vae": ShapeVAE, "lebm": ShapeLEBM, "lsd-ebm": LSDEBM}


def model_class(name: str) -> type[ShapeModel]:
    """``"vae" | "lebm" | "lsd-ebm"`` -> model class."""
    expect(name in MODELS, f"model {name!r}: expected one of {', '.join(MODELS)}.")
    return MODELS[name]


def load_shape_model(directory) -> ShapeModel:
    """Load any of the three models from a ``save_pretrained`` folder (a run's ``model/`` or the run itself)."""
    from pathlib import Path

    from latentmed.io import read_json

    directory = Path(directory)
    if (directory / "model" / "config.json").is_file():
        directory = directory / "model"
    meta = read_json(directory / "config.json")
    by_class = {cls.__name__: cls for cls in MODELS.values()}
    cls = by_class.get(meta.get("_class"))
    expect(cls is not None, f"{directory}: holds a {meta.get('_class')!r} model; expected one of "
                            f"{', '.join(by_class)} (a folder written by `latentmed shape train`).")
    model = cls.from_pretrained(directory)
    model.eval()
    return model


__all__ = ["LEBMConfig", "LSDEBM", "LSDEBMConfig", "MODELS", "MaskNetConfig", "ShapeLEBM", "ShapeOutput", "ShapeVAE",
           "VAEConfig", "bernoulli_nll", "load_shape_model", "lsd_noise_schedule", "model_class"]
