"""`latentmed info RUN` and `latentmed presets`: what a run holds, what presets exist."""

from __future__ import annotations

from pathlib import Path

import typer

from latentmed.cli._common import friendly_errors


@friendly_errors
def info(run: Path = typer.Argument(..., help="A DAE run folder (or a save_pretrained model folder).")) -> None:
    """Show a run's configuration, parameter counts and training step.

    Example: latentmed info runs/spine
    """
    from rich.console import Console
    from rich.table import Table

    from latentmed.dae.training import load_dae, load_run_config
    from latentmed.train.checkpoint import load_checkpoint

    dae = load_dae(run)
    table = Table(title=f"latentmed run {run}", show_header=False)
    if (Path(run) / "config.yaml").is_file():
        cfg = load_run_config(run)
        table.add_row("preset", cfg.preset)
        table.add_row("objective", f"{cfg.objective.name} ({cfg.objective.resolved_prediction}, "
                                   f"{cfg.objective.resolved_schedule})")
        ckpt = load_checkpoint(Path(run))
        table.add_row("training step", f"{int(ckpt[2]['step']) if ckpt else 0} / {cfg.train.steps}")
        table.add_row("latent DDIM", "yes" if (Path(run) / "latent" / "model").is_dir() else "no")
    c = dae.config
    table.add_row("image", f"{c.in_channels} x {c.image_size}^{c.dims}")
    table.add_row("z_sem dim", str(c.z_dim))
    table.add_row("semantic encoder", c.encoder_head())
    for k, v in dae.num_parameters().items():
        table.add_row(f"parameters ({k})", f"{v:,}")
    table.add_row("model id", dae.model_id)
    Console().print(table)


@friendly_errors
def presets() -> None:
    """List the DAE presets with their parameter counts, and how each differs from the model it is named after.

    Example: latentmed presets
    """
    from rich.console import Console
    from rich.table import Table

    from latentmed.dae import PRESETS, DiffusionAutoencoder, preset_config
    from latentmed.dae.presets import REFERENCE_DIFFERENCES

    table = Table(title="DAE presets")
    for col in ("preset", "image", "channels", "z_sem", "encoder", "decoder", "total"):
        table.add_column(col)
    for name in PRESETS:
        cfg = preset_config(name)
        n = DiffusionAutoencoder(cfg).num_parameters()
        table.add_row(name, f"{cfg.image_size}px", f"{cfg.model_channels}x{cfg.channel_mult}", str(cfg.z_dim),
                      f"{n['encoder']:,}", f"{n['decoder']:,}", f"{n['total']:,}")
    console = Console()
    console.print(table)
    for name, lines in REFERENCE_DIFFERENCES.items():
        console.print(f"{name} differs from its {lines[0].removeprefix('reference: ')}:")
        for line in lines[1:]:
            console.print(f"  - {line}")
