"""What a DAE run holds and what the presets are, as plain rows (``latentmed info`` and ``latentmed presets``)."""

from __future__ import annotations

import os
from pathlib import Path


def describe_run(run: str | os.PathLike) -> dict[str, str]:
    """``{field: value}`` of a run folder (or a ``save_pretrained`` model folder): configuration, training
    step, parameter counts, model id. Fields of the run (preset, objective, step) only where it has a
    ``config.yaml``."""
    from latentmed.config import load_run_config
    from latentmed.dae import DAERunConfig, load_dae
    from latentmed.train.checkpoint import load_checkpoint

    run = Path(run)
    dae = load_dae(run)
    rows: dict[str, str] = {}
    if (run / "config.yaml").is_file():
        cfg = load_run_config(run, DAERunConfig)
        rows["preset"] = str(cfg.preset)
        rows["objective"] = (f"{cfg.objective.name} ({cfg.objective.resolved_prediction}, "
                             f"{cfg.objective.resolved_schedule})")
        ckpt = load_checkpoint(run)
        rows["training step"] = f"{int(ckpt[2]['step']) if ckpt else 0} / {cfg.train.steps}"
        rows["latent DDIM"] = "yes" if (run / "latent" / "model").is_dir() else "no"
    c = dae.config
    rows["image"] = f"{c.in_channels} x {c.image_size}^{c.dims}"
    rows["z_sem dim"] = str(c.z_dim)
    rows["semantic encoder"] = c.encoder_head()
    for k, v in dae.num_parameters().items():
        rows[f"parameters ({k})"] = f"{v:,}"
    rows["model id"] = dae.model_id
    return rows


def describe_presets() -> list[dict[str, str]]:
    """One row per DAE preset: image size, channels, z_sem size and parameter counts (models are built on CPU)."""
    from latentmed.dae import PRESETS, DiffusionAutoencoder, preset_config

    rows = []
    for name in PRESETS:
        cfg = preset_config(name)
        n = DiffusionAutoencoder(cfg).num_parameters()
        rows.append({"preset": name, "image": f"{cfg.image_size}px",
                     "channels": f"{cfg.model_channels}x{cfg.channel_mult}", "z_sem": str(cfg.z_dim),
                     "encoder": f"{n['encoder']:,}", "decoder": f"{n['decoder']:,}", "total": f"{n['total']:,}"})
    return rows
