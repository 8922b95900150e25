"""`latentmed shape` commands: 3D mask refinement with VAE, LEBM and LSD-EBM (thin: parse and delegate).

Each command calls one library function (:mod:`latentmed.shape.training`, :mod:`latentmed.shape.workflow`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latentmed.cli._common import console, friendly_errors, given_options, progress_bar

app = typer.Typer(help="3D shape refinement (LSD-EBM, VAE, LEBM) of vertebra masks.", no_args_is_help=True)


@app.command()
@friendly_errors
def train(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", help="vae | lebm | lsd-ebm"),
    data: Path = typer.Option(..., "--data", help="Folder of high-quality NIfTI masks."),
    out: Path = typer.Option(..., "--out", help="Run folder (model/, checkpoint/, log.csv); resumes if present."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML: model:, objective:, train:, data: sections. "
                                          "Options given here beat it."),
    size: Optional[int] = typer.Option(None, "--size", help="Cube size (overrides model.image_size).", min=1),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override, e.g. --set model.num_steps=2."),
) -> None:
    """Train a shape model on high-quality masks.

    Example: latentmed shape train --model lsd-ebm --data data/spine --out runs/lsd --size 64 --set train.steps=300
    """
    from latentmed.config import merge_config
    from latentmed.shape.training import ShapeRunConfig, train_shape_model

    options = given_options(ctx, {"model": "kind", "size": "model.image_size"})
    cfg = merge_config(ShapeRunConfig, config, set_, options)
    result = train_shape_model(model, data, out, cfg)
    console.print(f"Trained {model} for {result.step} steps; model in {result.run_dir / 'model'}, log {result.log}")


@app.command()
@friendly_errors
def refine(
    run: Path = typer.Argument(..., help="Run folder (or its model/ folder)."),
    input: Path = typer.Option(..., "--input", help="Folder of coarse NIfTI masks."),
    out: Path = typer.Option(..., "--out", help="Output folder for refined masks (same file names)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="LSD-EBM: diffuse to step t (default: config).", min=1),
    seed: int = typer.Option(0, "--seed", min=0),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Binarise non-binary inputs at this value."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="ours | reference: the inference settings "
                                         "(reference: posterior sample, from t=T, Langevin from N(0,I), K=300); "
                                         "default: the run's own."),
) -> None:
    """Refine coarse masks (Algorithm 2). Outputs are cubes centred on each input's centre of mass.

    Example: latentmed shape refine runs/lsd --input data/coarse --out out/refined --recipe reference
    """
    from latentmed.shape.workflow import refine_folder

    with progress_bar("refine") as advance:
        done = refine_folder(run, input, out, steps=steps, seed=seed, threshold=threshold, batch_size=batch_size,
                             recipe=recipe, progress=advance)
    console.print(f"Refined {done['n']} masks into {out} ({done['seconds_per_sample']:.3f} s per sample)")


@app.command()
@friendly_errors
def sample(
    run: Path = typer.Argument(..., help="Run folder (or its model/ folder)."),
    n: int = typer.Option(4, "--n", help="Number of samples.", min=1),
    out: Path = typer.Option(..., "--out", help="Output folder for sample_XXXX.nii.gz."),
    seed: int = typer.Option(0, "--seed", min=0),
) -> None:
    """Unconditional samples (Algorithm 3 for LSD-EBM; prior Langevin for LEBM; N(0, I) for VAE).

    Example: latentmed shape sample runs/lsd --n 8 --out out/samples
    """
    from latentmed.shape.workflow import sample_folder

    sample_folder(run, n, out, seed=seed)
    console.print(f"Wrote {n} samples to {out}")


@app.command()
@friendly_errors
def evaluate(
    input: Path = typer.Option(..., "--input", help="Folder of coarse masks."),
    truth: Path = typer.Option(..., "--truth", help="Folder of high-quality masks with the same file names."),
    run: Optional[list[str]] = typer.Option(None, "--run", help="NAME=RUN_DIR, repeatable (e.g. VAE=runs/vae)."),
    out: Path = typer.Option(..., "--out", help="Folder for table.md, per_case.csv, summary.json and pictures."),
    size: Optional[int] = typer.Option(None, "--size", min=1,
                                       help="Cube size (default: the models' image_size, else 64)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="LSD-EBM refinement step t (default: config).", min=1),
    seed: int = typer.Option(0, "--seed", min=0),
    figures: int = typer.Option(3, "--figures", help="Mid-slice pictures for the first N cases.", min=0),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="ours | reference inference for every run "
                                         "(default: each run's own)."),
    controls: bool = typer.Option(False, "--controls", help="LSD-EBM control rows (energy off, round trip, "
                                  "t sweep) and the direction table; the VAE's sampled row."),
    sweep_points: Optional[int] = typer.Option(None, "--sweep-points", min=2,
                                               help="Starting steps in the t sweep (default: every t in 0..T)."),
) -> None:
    """Table 1 of the paper: Dice, VS, SEN, SPEC, NMI, kappa (mean ± std) for the input and each model.

    Example: latentmed shape evaluate --input data/coarse --truth data/spine --run VAE=runs/vae
    --run LSD-EBM=runs/lsd --out out/eval
    """
    from latentmed.errors import LatentmedError
    from latentmed.shape.workflow import evaluate_folders

    runs = {}
    for item in run or []:
        name, sep, directory = item.partition("=")
        if not sep:
            raise LatentmedError(f"--run {item!r}: expected NAME=RUN_DIR, e.g. LSD-EBM=runs/lsd.")
        runs[name.strip()] = directory
    with console.status(f"refining the cases with {len(runs)} model(s)"):
        result = evaluate_folders(input, truth, runs, out, size=size, steps=steps, seed=seed, figures=figures,
                                  recipe=recipe, controls=controls, sweep_points=sweep_points)
    typer.echo(result.table())


@app.command()
@friendly_errors
def degrade(
    inp: Path = typer.Argument(..., metavar="IN", help="A NIfTI mask or a folder of them."),
    out: Path = typer.Argument(..., help="Output file (for a file) or folder (for a folder)."),
    thickness: int = typer.Option(6, "--thickness", help="Slab thickness in voxels (mm at 1 mm spacing).", min=1),
    axis: int = typer.Option(2, "--axis", help="Through-plane axis 0, 1 or 2 (2: sagittal slabs).", min=0, max=2),
    partial_volume: float = typer.Option(0.75, "--partial-volume", min=0, max=1,
                                         help="Keep a slab voxel when the slab mean exceeds this."),
    mode: str = typer.Option("nearest", "--mode", help="nearest (repeat slabs) | linear (interpolate slabs)."),
    noise: float = typer.Option(0.0, "--noise", help="Fraction of boundary voxels flipped.", min=0, max=1),
    blobs: int = typer.Option(0, "--blobs", help="Balls of radius 2 added/removed on the boundary.", min=0),
    seed: int = typer.Option(0, "--seed", min=0),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Binarise non-binary inputs at this value."),
) -> None:
    """Simulate thick-slice acquisition of high-quality masks (assumptions: latentmed.shape.volumes).

    Example: latentmed shape degrade data/spine data/coarse --thickness 6 --axis 2 --partial-volume 0.75
    """
    from latentmed.shape.workflow import degrade_folder

    written = degrade_folder(inp, out, thickness=thickness, axis=axis, partial_volume=partial_volume, mode=mode,
                             noise=noise, blobs=blobs, seed=seed, threshold=threshold)
    console.print(f"Degraded {len(written)} mask(s) into {out}")
