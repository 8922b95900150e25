"""Training the shape models through the shared loop (:func:`latentmed.train.train`).

A run folder holds ``config.yaml`` (the resolved :class:`ShapeRunConfig`: ``kind``, ``model``,
``objective``, ``train``, ``data``), ``model/`` (EMA weights, ``config.json`` +
``model.safetensors``), ``checkpoint/`` (resumable) and ``log.csv``. All three models train in
ONE stage (one ``train`` call): their objectives put the energy term and the autoencoder terms
on disjoint parameters, clipped per parameter group.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from latentmed.config import RunConfig, from_dict, save_run_config, to_dict
from latentmed.errors import expect
from latentmed.runtime import seed_everything
from latentmed.shape.models import MODELS, MaskNetConfig, model_class
from latentmed.shape.objectives import ShapeObjectiveConfig
from latentmed.train.config import TrainConfig
from latentmed.train.result import RunResult
from latentmed.train.runlock import check_run_dir


@dataclass
class ShapeTrainConfig(TrainConfig):
    """:class:`TrainConfig` of shape runs, for short CPU runs: Adam 5e-4, batch 8, EMA 0.999, grad-clip 1.

    ``energy_lr``: the energy's own learning rate (LEBM, LSD-EBM; unset: ``lr``). The reference
    code trains the energy with its own Adam at 2e-5.

    ``init_autoencoder``: a shape run (or model folder) whose encoder and decoder weights start
    this run (same ``image_size``, ``latent_dim``, channels); ``freeze_autoencoder``: train the
    energy alone on that fixed autoencoder (LSD-EBM). Because LSD-EBM's energy term reaches the
    autoencoder only through detached latents, the two stages optimise the same losses as
    Algorithm 1's single stage; one autoencoder then serves energies for several T.
    """

    steps: int = 500
    batch_size: int = 8
    lr: float = 5e-4
    ema_decay: float = 0.999
    checkpoint_every: int = 100
    energy_lr: float | None = None
    init_autoencoder: str = ""
    freeze_autoencoder: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        expect(self.energy_lr is None or self.energy_lr > 0, f"train.energy_lr={self.energy_lr}: expected > 0.")
        expect(not self.freeze_autoencoder or self.init_autoencoder,
               "train.freeze_autoencoder=true: expected train.init_autoencoder=RUN_DIR, the trained autoencoder "
               "to keep fixed.")


@dataclass
class ShapeDataConfig:
    """Data options: the folder of high-quality masks, the paper's augmentation, isotropic spacing (mm),
    optional binarising threshold.

    ``shift_fraction``: the augmentation's largest shift as a fraction of the cube side (the
    paper's 7 voxels at 128^3 is 0.055; a fixed 7 voxels would be 22% of a 32^3 cube).
    """

    path: str = ""
    augment: bool = True
    shift_fraction: float = 0.055
    spacing: float = 1.0
    threshold: float | None = None

    def __post_init__(self) -> None:
        expect(0.0 <= self.shift_fraction < 0.5, f"data.shift_fraction={self.shift_fraction}: expected [0, 0.5).")


@dataclass
class ShapeRunConfig(RunConfig):
    """A shape run (``--config`` YAML and the run's ``config.yaml``): ``kind`` (vae | lebm | lsd-ebm;
    empty: the one :func:`train_shape_model` is given), ``model`` (keys of that model's config),
    ``objective`` (loss weights), ``train``, ``data``."""

    how_to_make = "latentmed shape train"

    kind: str = ""
    model: dict = field(default_factory=dict)
    objective: ShapeObjectiveConfig = field(default_factory=ShapeObjectiveConfig)
    train: ShapeTrainConfig = field(default_factory=ShapeTrainConfig)
    data: ShapeDataConfig = field(default_factory=ShapeDataConfig)

    def __post_init__(self) -> None:
        expect(self.kind in ("", *MODELS), f"kind={self.kind!r}: expected one of {', '.join(MODELS)}.")

    @classmethod
    def recipe_layer(cls, data: dict) -> dict:
        """``objective.recipe=reference``: the authors' model keys and optimisation
        (:data:`~latentmed.shape.configs.REFERENCE_LSDEBM`, :data:`~latentmed.shape.configs.REFERENCE_TRAIN`)
        under every key the run sets (``--config``, ``--set``, options)."""
        objective = data.get("objective")
        if not (isinstance(objective, dict) and objective.get("recipe") == "reference"):
            return {}
        from latentmed.shape.configs import REFERENCE_LSDEBM, REFERENCE_TRAIN

        return {"model": dict(REFERENCE_LSDEBM), "train": dict(REFERENCE_TRAIN)}

    def model_config(self) -> MaskNetConfig:
        """The typed config of ``kind`` from the ``model`` section (unknown keys are an error)."""
        expect(self.kind != "", "kind: expected vae, lebm or lsd-ebm, got none.")
        for key in ("kl_weight", "ebm_weight"):
            expect(key not in self.model, f"model.{key}: a loss weight, set in the objective section; write "
                                          f"objective.{key} instead.")
        return from_dict(model_class(self.kind).config_class, dict(self.model), where="config.model")


def train_shape_model(kind: str, data_dir: str | Path, out_dir: str | Path,
                      run_config: ShapeRunConfig | None = None, *, image_size: int | None = None) -> RunResult:
    """Train ``vae`` | ``lebm`` | ``lsd-ebm`` on the high-quality masks in ``data_dir``; return the run
    (:class:`~latentmed.train.RunResult`, ``model``: the EMA weights as saved in ``out_dir/model``).

    ``image_size`` (if given) overrides ``model.image_size``; masks are cropped to that cube.
    ``out_dir/config.yaml`` records the resolved run (``kind``, the full model config, the loss
    weights, ``data.path``). A ``run_config`` naming another ``kind`` is an error.
    """
    from latentmed.shape.objectives import shape_objective
    from latentmed.shape.volumes import MaskDataset
    from latentmed.train import train

    check_run_dir(out_dir)  # a file, or a run another process is training: refused before any work
    base = run_config or ShapeRunConfig()
    expect(base.kind in ("", kind), f"the run config's kind={base.kind!r} differs from the model to train, {kind!r}; "
                                    "drop kind from the config or train that model.")
    model = {**base.model, **({"image_size": image_size} if image_size is not None else {})}
    cfg = replace(base, kind=kind, model=model, objective=base.objective.resolved(kind),
                  data=replace(base.data, path=str(data_dir)))
    expect(cfg.objective.recipe != "reference" or cfg.model.get("recipe") == "reference",
           "objective.recipe=reference: the run config lacks the recipe's model keys (model.recipe is not "
           "'reference'); build it with latentmed.config.load_config(ShapeRunConfig, overrides={'objective': "
           "{'recipe': 'reference'}, ...}) or --set objective.recipe=reference, which fill the keys you leave unset.")
    model_cfg = cfg.model_config()
    expect(cfg.train.energy_lr is None or kind != "vae",
           f"train.energy_lr={cfg.train.energy_lr}: the {kind} model has no energy; leave it unset.")
    cfg.model = to_dict(model_cfg)
    objective = shape_objective(kind, cfg.objective)
    data = cfg.data
    dataset = MaskDataset(data_dir, model_cfg.image_size, augment=data.augment, seed=cfg.train.seed,
                          spacing=data.spacing, threshold=data.threshold,
                          max_shift=int(round(data.shift_fraction * model_cfg.image_size)))
    seed_everything(cfg.train.seed)  # same seed, same initial weights
    net = model_class(kind)(model_cfg)
    if cfg.train.init_autoencoder:
        load_autoencoder(net, cfg.train.init_autoencoder)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_run_config(cfg, out_dir)
    # One optimizer group per part (autoencoder, energy), each clipped on its own (and with its own lr).
    groups = net.parameter_groups()
    if cfg.train.freeze_autoencoder:
        expect(kind == "lsd-ebm", f"train.freeze_autoencoder: only LSD-EBM's energy trains apart from its "
                                  f"autoencoder (the {kind} model's terms all reach the decoder).")
        for p in groups[0]["params"]:
            p.requires_grad_(False)
        groups = groups[1:]
    for group in groups:
        if group["name"] == "energy" and cfg.train.energy_lr is not None:
            group["lr"] = cfg.train.energy_lr
    result = train(net, objective, dataset, cfg.train, out_dir, parameters=groups)
    return RunResult(run_dir=out_dir, model=result.ema_model, step=result.step)


def load_autoencoder(net, source: str | Path) -> None:
    """Copy the encoder and decoder weights of the shape model in ``source`` (a run or model folder) into ``net``."""
    from latentmed.shape.models import load_shape_model

    src = load_shape_model(source)
    for part in ("encoder", "decoder"):
        mine, theirs = getattr(net, part, None), getattr(src, part, None)
        expect(mine is not None and theirs is not None,
               f"train.init_autoencoder={source}: its {type(src).__name__} and the {type(net).__name__} to train "
               f"must both have an {part}.")
        shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
        wanted = {k: tuple(v.shape) for k, v in mine.state_dict().items()}
        expect(shapes == wanted, f"train.init_autoencoder={source}: its {part} differs in shape from this run's "
                                 "(image_size, latent_dim, base_channels, max_channels must match).")
        mine.load_state_dict(theirs.state_dict())


__all__ = ["ShapeDataConfig", "ShapeRunConfig", "ShapeTrainConfig", "load_autoencoder",
           "train_shape_model"]
