"""`latentmed phantom` commands: synthetic data sets with known ground truth (one command per generator)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latentmed.cli._common import console, friendly_errors, parse_list, progress_bar

app = typer.Typer(help="Generate phantoms: synthetic images whose ground truth is known exactly.",
                  no_args_is_help=True)

_OVERWRITE = typer.Option(False, "--overwrite", help="Write into a non-empty folder.")
_SEED = typer.Option(0, "--seed", min=0, help="Random seed: same seed, same data (item i of spine2d and chest2d "
                     "depends only on (seed, i)).")


def _generate(name: str, generate, out: Path, n: int, **options) -> None:
    """Run ``generate`` (one library function per command) with a progress bar; say what was written."""
    with progress_bar(name) as advance:
        out_dir = generate(out, n, progress=advance, **options)
    console.print(f"wrote {n} {name} phantom(s) to {out_dir} (labels: {out_dir / 'labels.csv'})")


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
    seed: int = _SEED,
    grade_weights: Optional[str] = typer.Option(
        None, "--grade-weights", help="Relative frequency of Genant grades G0..G3, e.g. '0.25,0.25,0.25,0.25', "
        "or 'verse' for the VerSe imbalance (4124/74/102/44). Default: equal."),
    adjacent_fracture_rate: float = typer.Option(
        0.1, "--adjacent-fracture-rate", min=0, max=1,
        help="Fraction of images where a neighbouring vertebra is fractured too."),
    levels: Optional[str] = typer.Option(None, "--levels", help="Centre vertebra levels, e.g. 'T11,T12,L1,L2' "
                                         "(default T4..L4)."),
    jitter: float = typer.Option(0.0, "--jitter", min=0, max=1,
                                 help="Crop jitter: shift the centre vertebra along the spine by up to this "
                                 "fraction of a body + disc height (0.4: ~4 px at 64 px), so it is not always "
                                 "at the same pixels. Default 0 (centred, as the papers crop)."),
    overwrite: bool = _OVERWRITE,
) -> None:
    """Sagittal CT-like spine slices with a graded fracture of the centre vertebra.

    Example: latentmed phantom spine2d data/spine --n 2000 --size 64 --seed 0 --grade-weights 0.4,0.2,0.2,0.2
    """
    from latentmed.data.phantoms.spine2d import generate_spine2d

    _generate("spine2d", generate_spine2d, out, n, size=size, seed=seed, grade_weights=grade_weights,
              adjacent_fracture_rate=adjacent_fracture_rate, levels=parse_list(levels, str, "--levels") or None,
              jitter=jitter, overwrite=overwrite)


@app.command("chest2d")
@friendly_errors
def chest2d(
    out: Path = typer.Argument(..., help="Output folder (images/, masks/, labels.csv, phantom.json)."),
    n: int = typer.Option(200, "--n", help="Number of images.", min=1),
    size: int = typer.Option(64, "--size", help="Image side in pixels (>= 32).", min=1),
    seed: int = _SEED,
    variant: str = typer.Option("classic", "--variant", help="'classic' or 'varied' (pose, exposure, anatomy, "
                                "subtler findings)."),
    overwrite: bool = _OVERWRITE,
) -> None:
    """Chest-radiograph-like phantoms with lung/heart masks and multi-label clinical labels.

    Example: latentmed phantom chest2d data/chest --n 500 --size 64
    """
    from latentmed.data.phantoms.chest2d import generate_chest2d

    _generate("chest2d", generate_chest2d, out, n, size=size, seed=seed, variant=variant, overwrite=overwrite)


@app.command("spine3d")
@friendly_errors
def spine3d(
    out: Path = typer.Argument(..., help="Output folder for spine3d_XXXX.nii.gz, parts/, labels.csv."),
    n: int = typer.Option(20, "--n", help="Number of masks (5 levels L1-L5 per individual).", min=1),
    size: int = typer.Option(64, "--size", help="Cube size in voxels (1 mm spacing).", min=1),
    seed: int = _SEED,
    overwrite: bool = _OVERWRITE,
) -> None:
    """3D vertebra masks (body, pedicles, laminae, spinous, transverse, articular processes) as NIfTI.

    Part labels (1 body .. 6 articular) go to OUT/parts/ with the same file names.

    Example: latentmed phantom spine3d data/spine --n 40 --size 64
    """
    from latentmed.data.phantoms.spine3d import generate_spine3d

    _generate("spine3d", generate_spine3d, out, n, size=size, seed=seed, overwrite=overwrite)
