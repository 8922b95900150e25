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

    from latentmed.dae.describe import describe_run

    table = Table(title=f"latentmed run {run}", show_header=False)
    for field, value in describe_run(run).items():
        table.add_row(field, value)
    Console().print(table)


@friendly_errors
def presets() -> None:
    """List the DAE presets with their parameter counts, and how each differs from the model it is named after.

    Example: latentmed presets
    """
    from rich.console import Console
    from rich.table import Table

    from latentmed.dae.describe import describe_presets
    from latentmed.dae.presets import REFERENCE_DIFFERENCES

    rows = describe_presets()
    table = Table(title="DAE presets")
    for col in rows[0]:
        table.add_column(col)
    for row in rows:
        table.add_row(*row.values())
    console = Console()
    console.print(table)
    for name, lines in REFERENCE_DIFFERENCES.items():
        console.print(f"{name} differs from its {lines[0].removeprefix('reference: ')}:")
        for line in lines[1:]:
            console.print(f"  - {line}")
