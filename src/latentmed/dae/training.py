"""Training a DAE run end to end: the DAE, then the latent DDIM on its z_sem.

A run folder holds ``config.yaml`` (the resolved run config), ``checkpoint/`` (resumable),
``log.csv`` + ``tb/``, ``previews/`` (reconstruction grids), ``model/`` (EMA DAE,
``save_pretrained`` layout) and ``latent/model/`` (latent DDIM). Running again on the same
folder resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from latentmed.config import RUN_CONFIG_NAME, RunConfig, load_run_config, save_run_config
from latentmed.dae.encode import encode_dataset
from latentmed.dae.latent_ddim import LatentDDIM, LatentDDIMConfig
from latentmed.dae.model import DiffusionAutoencoder
from latentmed.dae.objectives import DAEObjective, ObjectiveConfig, latent_loss
from latentmed.dae.presets import preset_config
from latentmed.errors import LatentmedError
from latentmed.runtime import seed_everything
from latentmed.train import RunResult, TrainConfig, batch_images, train
from latentmed.train.runlock import check_run_dir
from latentmed.viz import save_image_grid


@dataclass
class DataConfig:
    """Where the training images come from (any source :func:`latentmed.data.open_images` reads)."""

    path: str = ""
    size: int = 0  # 0: the preset's image size
    channels: int = 1
    axis: str = "sagittal"  # volumes: slice axis (a view name or 0/1/2)
    window: str = ""  # CT window: a preset ("bone") or "centre,width" in HU; "" = min..max
    slices: str = ""  # volumes: "64" or "10,20,30:40"; "" = all
    nan_to: str = ""  # NaN/inf voxels: "" = error, a number, or "min"
    skip_bad: bool = False
    allow_gaps: bool = False  # DICOM series: read one with a missing slice position as is

    def read_options(self) -> dict:
        """The reading options as :func:`latentmed.data.open_images` keyword arguments."""
        return {"axis": self.axis, "window": self.window or None, "slices": self.slices or None,
                "nan_to": self.nan_to or None, "skip_bad": self.skip_bad, "allow_gaps": self.allow_gaps}


@dataclass
class LatentTrainConfig:
    """The latent DDIM trained after the DAE (DiffAE Sec. 4); ``steps = 0`` skips it."""

    steps: int = 2000
    batch_size: int = 128
    lr: float = 1e-4
    hidden: int = 512
    num_layers: int = 4
    schedule: str = "linear"
    prediction: str = "v"  # eps spreads the samples of a briefly trained latent DDIM (LatentDDIMConfig)


@dataclass
class DAETrainConfig(TrainConfig):
    """:class:`TrainConfig` of DAE runs: ``mixed_precision="auto"``, i.e. bf16 on CPUs with native
    bf16 (tiny and diffae-64 train steps 1.6x and 2.3x faster, loss curve within 1/7 of the
    seed-to-seed spread; benchmarks/README.md), fp32 elsewhere."""

    mixed_precision: str = "auto"


@dataclass
class DAERunConfig(RunConfig):
    """Everything a ``latentmed dae train`` run needs; YAML sections mirror the fields."""

    how_to_make = "latentmed dae train"

    preset: str = "tiny"
    model: dict = field(default_factory=dict)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: DAETrainConfig = field(default_factory=DAETrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    latent: LatentTrainConfig = field(default_factory=LatentTrainConfig)
    preview_steps: int = 20

    def dae_config(self, image_size: int | None = None):
        """The DAE architecture: preset + ``model`` overrides + size/channels + the objective's diffusion."""
        overrides = dict(self.model)
        if self.data.size:
            overrides.setdefault("image_size", self.data.size)
        elif image_size:
            overrides.setdefault("image_size", image_size)
        overrides.setdefault("in_channels", self.data.channels)
        overrides["schedule"] = self.objective.resolved_schedule
        overrides["prediction"] = self.objective.resolved_prediction
        overrides["precision"] = self.train.mixed_precision  # the model keeps it: inference runs as training did
        return preset_config(self.preset, **overrides)


def load_dae(run_or_model_dir: str | Path, device: str = "cpu") -> DiffusionAutoencoder:
    """The EMA DAE of a run folder (``RUN/model``) or of a ``save_pretrained`` folder.

    The model's saved ``precision`` (the run's ``train.mixed_precision``) sets its autocast; a run
    trained with ``train.compile`` also compiles its UNet for sampling (``set_inference``).
    """
    path = Path(run_or_model_dir)
    if not path.exists():
        raise LatentmedError(f"{run_or_model_dir}: no such folder. Give the --out folder of `latentmed dae train` "
                             "(or a save_pretrained folder).")
    run_cfg = load_run_config(path, DAERunConfig) if (path / RUN_CONFIG_NAME).is_file() else None
    if (path / "model" / "config.json").is_file():
        path = path / "model"
    if not (path / "config.json").is_file():
        raise LatentmedError(f"{run_or_model_dir}: no trained DAE found (expected RUN/model/config.json). "
                             "Is training finished? Run `latentmed dae train` (it resumes) first.")
    dae = DiffusionAutoencoder.from_pretrained(path, device=device).eval()
    if run_cfg is not None and run_cfg.train.compile:
        dae.set_inference(compile=True)
    return dae


def load_latent_ddim(run_dir: str | Path, device: str = "cpu") -> LatentDDIM:
    path = Path(run_dir) / "latent" / "model"
    if not (path / "config.json").is_file():
        raise LatentmedError(f"{run_dir}: this run has no latent DDIM (latent/model). Train with latent.steps > 0.")
    return LatentDDIM.from_pretrained(path, device=device).eval()


def _preview(dataset, steps: int):
    images = torch.stack([batch_images(dataset[i]) for i in range(min(8, len(dataset)))])

    def fn(ema_model, step: int, out_dir: Path) -> None:
        model = ema_model
        x = images.to(model.device)
        rec_inv = model.reconstruct(x, steps=steps, inversion=True)
        rec_rnd = model.reconstruct(x, steps=steps, inversion=False, generator=torch.Generator().manual_seed(0))
        save_image_grid(torch.cat([x, rec_inv, rec_rnd]).cpu(), Path(out_dir) / "previews" / f"step{step:07d}.png",
                        nrow=len(x))

    return fn


def train_dae(cfg: DAERunConfig, run_dir: str | Path, dataset=None, *, labels: str | Path | None = None,
              id_column: str = "id", allow_unmatched: bool = False,
              report: Callable[[str], None] | None = None) -> RunResult:
    """Train (or resume) the DAE of ``cfg`` in ``run_dir``, then its latent DDIM (``cfg.latent.steps``, 0: none);
    return the run with the EMA DAE as ``model``. Each stage is announced through ``report`` before it starts.

    Without ``dataset`` the images are read from ``cfg.data`` (data notices go to ``report``).
    ``labels``: an optional CSV whose ids are checked against the images (training uses no labels;
    unmatched rows are an error unless ``allow_unmatched``).
    """
    run_dir = check_run_dir(run_dir)  # a file, or a run another process is training: refused before any work
    if dataset is None:
        if not cfg.data.path:
            raise LatentmedError("no training data: set data.path in the config or pass --data DIR.")
        from latentmed.data import open_images

        size = cfg.data.size or preset_config(cfg.preset, **cfg.model).image_size
        dataset = open_images(cfg.data.path, size=size, channels=cfg.data.channels, report=report,
                              **cfg.data.read_options())
    if labels is not None:
        from latentmed.data import read_labels

        read_labels(labels, ids=dataset.ids, id_column=id_column, strict=not allow_unmatched)
    first = dataset[0]
    x0 = batch_images(first)
    dae_cfg = cfg.dae_config(image_size=x0.shape[-1])
    if (run_dir / RUN_CONFIG_NAME).is_file():
        saved = load_run_config(run_dir, DAERunConfig).dae_config(image_size=x0.shape[-1])
        if dataclasses.replace(saved, precision=dae_cfg.precision) != dae_cfg:  # precision may change on resume
            raise LatentmedError(f"{run_dir}: already holds a run with another model configuration. Use a new --out "
                                 "folder, or the same config to resume.")
    seed_everything(cfg.train.seed)  # same seed, same initial weights
    model = DiffusionAutoencoder(dae_cfg)
    model.check_images(x0[None], "training images")
    save_run_config(cfg, run_dir)

    step = trained_steps(run_dir) if (run_dir / "model" / "config.json").is_file() else -1
    if step < cfg.train.steps:
        _say(report, f"Stage 1: the DAE, {cfg.train.steps} steps -> {run_dir / 'model'}")
        objective = DAEObjective(cfg.objective, cfg.train.steps)
        preview = _preview(dataset, cfg.preview_steps) if cfg.train.preview_every else None
        step = train(model, objective, dataset, cfg.train, run_dir, preview_fn=preview, desc="train DAE").step
    dae = load_dae(run_dir)

    if cfg.latent.steps > 0 and not (run_dir / "latent" / "model" / "config.json").is_file():
        _say(report, f"Stage 2: the latent DDIM on z_sem, {cfg.latent.steps} steps -> {run_dir / 'latent'} "
                     "(latent.steps, `--latent-steps 0` skips it; `dae sample` needs it)")
        train_latent_ddim(dae, dataset, cfg, run_dir / "latent")
    return RunResult(run_dir=run_dir, model=dae, step=step)


def _say(report: Callable[[str], None] | None, message: str) -> None:
    if report is not None:
        report(message)


def trained_steps(run_dir: str | Path) -> int:
    """The step of the run's last checkpoint (-1: none), i.e. how far ``train_dae`` got."""
    from latentmed.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(Path(run_dir))
    return -1 if ckpt is None else int(ckpt[2]["step"])


def train_latent_ddim(dae: DiffusionAutoencoder, dataset, cfg: DAERunConfig, out_dir: Path,
                      z: torch.Tensor | None = None) -> LatentDDIM:
    """Fit the latent DDIM on the normalised z_sem of ``dataset`` (or on the given ``z``)."""
    if z is None:
        z = encode_dataset(dae, dataset, progress=cfg.train.progress)["z_sem"]
    lcfg = cfg.latent
    seed_everything(cfg.train.seed)
    model = LatentDDIM(LatentDDIMConfig(z_dim=z.shape[1], hidden=lcfg.hidden, num_layers=lcfg.num_layers,
                                        schedule=lcfg.schedule, prediction=lcfg.prediction,
                                        precision=cfg.train.mixed_precision))
    model.set_normalisation(z)
    zn = model.normalise(z)
    tcfg = dataclasses.replace(cfg.train, steps=lcfg.steps, batch_size=min(lcfg.batch_size, len(zn)), lr=lcfg.lr,
                               preview_every=0, checkpoint_every=max(lcfg.steps // 2, 1), warmup_steps=0)
    result = train(model, latent_loss(model.config.schedule, model.config.prediction), _TensorDataset(zn), tcfg,
                   out_dir, desc="train latent DDIM")
    return result.ema_model


class _TensorDataset(torch.utils.data.Dataset):
    def __init__(self, z: torch.Tensor):
        self.z = z

    def __len__(self) -> int:
        return len(self.z)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.z[i]
