"""`latentmed phantom` commands: synthetic data sets with known ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latentmed.cli._common import console, friendly_errors

app = typer.Typer(help="Generate phantoms: synthetic images whose ground truth is known exactly.",
                  no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Generate phantoms: synthetic images whose ground truth is known exactly."""
    # A callback keeps `phantom` a command group (typer collapses a one-command app otherwise).


@app.command("spine2d")
@friendly_errors
def spine2d(
    out: Path = typer.Argument(..., help="Output folder (gets images/<id>.png, labels.csv, phantom.json)."),
    n: int = typer.Option(1000, "--n", help="Number of images.", min=1),
    size: int = typer.Option(64, "--size", help="Image width and height in pixels.", min=1),
    seed: int = typer.Option(0, "--seed", help="Random seed; image i depends only on (seed, i).", min=0),
    grade_weights: Optional[str] = typer.Option(
        None, "--grade-weights", help="Relative frequency of Genant grades G0..G3, e.g. '0.25,0.25,0.25,0.25', "
        "or 'verse' for the VerSe imbalance (4124/74/102/44). Default: equal."),
    adjacent_fracture_rate: float = typer.Option(
        0.1, "--adjacent-fracture-rate", min=0, max=1,
        help="Fraction of images where a neighbouring vertebra is fractured too."),
    levels: Optional[str] = typer.Option(None, "--levels", help="Centre vertebra levels, e.g. 'T11,T12,L1,L2' "
                                         "(default T4..L4)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty folder."),
) -> None:
    """Sagittal CT-like spine slices with a graded fracture of the centre vertebra.

    Example: latentmed phantom spine2d data/spine --n 2000 --size 64 --seed 0 --grade-weights 0.4,0.2,0.2,0.2
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from latentmed.cli._common import parse_list
    from latentmed.data.phantoms.spine2d import generate_spine2d

    level_list = parse_list(levels, str, "--levels") or None
    with Progress(TextColumn("spine2d"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("render", total=n)
        out_dir = generate_spine2d(out, n=n, size=size, seed=seed, grade_weights=grade_weights,
                                   adjacent_fracture_rate=adjacent_fracture_rate, levels=level_list,
                                   overwrite=overwrite,
                                   callback=lambda done, total: progress.update(task, completed=done))
    console.print(f"wrote {n} images to {out_dir / 'images'} and labels to {out_dir / 'labels.csv'}")


# The 3D spine and chest phantoms' commands live beside their models' commands.
from latentmed.cli.ldm import phantom_chest2d  # noqa: E402
from latentmed.cli.shape import phantom_spine3d  # noqa: E402

app.command("spine3d")(phantom_spine3d)
app.command("chest2d")(phantom_chest2d)
