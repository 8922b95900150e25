"""Training the shape models through the shared loop (:func:`latentmed.train.train`).

A run folder holds ``model/`` (EMA weights, ``config.json`` + ``model.safetensors``),
``checkpoint/`` (resumable), ``log.csv`` and ``run.json`` (model name, data folder, the
full configuration). All three models train in ONE stage (one ``train`` call): their
losses put the energy term and the autoencoder terms on disjoint parameters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentmed.config import from_dict, load_config, to_dict
from latentmed.io import write_json
from latentmed.runtime import seed_everything
from latentmed.train.config import TrainConfig


def default_train_config() -> TrainConfig:
    """Shape defaults for short CPU runs: Adam 5e-4, batch 8, EMA 0.999, grad-clip 1."""
    return TrainConfig(steps=500, batch_size=8, lr=5e-4, ema_decay=0.999, grad_clip=1.0, log_every=10,
                       checkpoint_every=100)


@dataclass
class ShapeDataConfig:
    """Data options: the paper's augmentation, isotropic spacing (mm), optional binarising threshold.

    ``shift_fraction``: the augmentation's largest shift as a fraction of the cube side (the
    paper's 7 voxels at 128^3 is 0.055; a fixed 7 voxels would be 22% of a 32^3 cube).
    """

    augment: bool = True
    shift_fraction: float = 0.055
    spacing: float = 1.0
    threshold: float | None = None

    def __post_init__(self) -> None:
        from latentmed.errors import expect

        expect(0.0 <= self.shift_fraction < 0.5, f"data.shift_fraction={self.shift_fraction}: expected [0, 0.5).")


@dataclass
class ShapeRunConfig:
    """YAML layout of ``--config``: ``model: {...}`` (keys of the model's config), ``train:``, ``data:``."""

    model: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=default_train_config)
    data: ShapeDataConfig = field(default_factory=ShapeDataConfig)


def load_run_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ShapeRunConfig:
    """Read a :class:`ShapeRunConfig` from YAML plus ``key=value`` overrides (e.g. ``model.latent_dim=50``)."""
    return load_config(ShapeRunConfig, path, overrides, base={"train": to_dict(default_train_config())})


def train_shape_model(model_name: str, data_dir: str | Path, out_dir: str | Path,
                      run_config: ShapeRunConfig | None = None, *, image_size: int | None = None) -> Any:
    """Train ``vae`` | ``lebm`` | ``lsd-ebm`` on the high-quality masks in ``data_dir``; return a ``TrainResult``.

    ``image_size`` (if given) overrides ``model.image_size``; masks are cropped to that cube.
    """
    from latentmed.shape.models import model_class, shape_loss
    from latentmed.shape.volumes import MaskDataset
    from latentmed.train import train

    run_config = run_config or ShapeRunConfig()
    cls = model_class(model_name)
    model_dict = dict(run_config.model)
    if image_size is not None:
        model_dict["image_size"] = image_size
    model_cfg = from_dict(cls.config_class, model_dict, where="config.model")
    dataset = MaskDataset(data_dir, model_cfg.image_size, augment=run_config.data.augment,
                          seed=run_config.train.seed, spacing=run_config.data.spacing,
                          threshold=run_config.data.threshold,
                          max_shift=int(round(run_config.data.shift_fraction * model_cfg.image_size)))
    seed_everything(run_config.train.seed)  # same seed, same initial weights
    model = cls(model_cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "run.json", {"model": model_name, "data": str(data_dir), "n_train": len(dataset),
                                      "model_config": dataclasses.asdict(model_cfg),
                                      "train": dataclasses.asdict(run_config.train),
                                      "data_config": dataclasses.asdict(run_config.data)})
    # One optimizer group per part (autoencoder, energy), each clipped on its own.
    return train(model, shape_loss, dataset, run_config.train, out_dir, parameters=model.parameter_groups())
