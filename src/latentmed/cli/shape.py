"""`latentmed shape` commands: 3D mask refinement with VAE, LEBM and LSD-EBM (thin: parse and delegate).

Also defines :func:`phantom_spine3d`, registered by the lead as ``latentmed phantom spine3d``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latentmed.cli._common import console, friendly_errors

app = typer.Typer(help="3D shape refinement (LSD-EBM, VAE, LEBM) of vertebra masks.", no_args_is_help=True)


def phantom_spine3d(
    out: Path = typer.Argument(..., help="Output folder for spine3d_XXXX.nii.gz and labels.csv."),
    n: int = typer.Option(20, "--n", help="Number of masks (5 levels L1-L5 per individual).", min=1),
    size: int = typer.Option(64, "--size", help="Cube size in voxels (1 mm spacing).", min=1),
    seed: int = typer.Option(0, "--seed", help="Random seed.", min=0),
) -> None:
    """Write 3D vertebra masks (body, pedicles, laminae, spinous, transverse, articular processes) as NIfTI.

    Part labels (1 body .. 6 articular) go to OUT/parts/ with the same file names.

    Example: latentmed phantom spine3d data/spine --n 40 --size 64
    """
    from latentmed.data.phantoms.spine3d import generate_spine3d

    with console.status(f"writing {n} masks"):
        csv_path = generate_spine3d(out, n, size=size, seed=seed)
    console.print(f"Wrote {n} masks and {csv_path}")


phantom_spine3d = friendly_errors(phantom_spine3d)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


@app.command()
@friendly_errors
def train(
    model: str = typer.Option(..., "--model", help="vae | lebm | lsd-ebm"),
    data: Path = typer.Option(..., "--data", help="Folder of high-quality NIfTI masks."),
    out: Path = typer.Option(..., "--out", help="Run folder (model/, checkpoint/, log.csv); resumes if present."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML with model:, train:, data: sections."),
    size: Optional[int] = typer.Option(None, "--size", help="Cube size (overrides model.image_size).", min=1),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override, e.g. --set model.num_steps=2."),
) -> None:
    """Train a shape model on high-quality masks.

    Example: latentmed shape train --model lsd-ebm --data data/spine --out runs/lsd --size 64 --set train.steps=300
    """
    from latentmed.shape.training import load_run_config, train_shape_model

    cfg = load_run_config(config, set_ or [])
    result = train_shape_model(model, data, out, cfg, image_size=size)
    console.print(f"Trained {model} for {result.step} steps; model in {Path(out) / 'model'}")


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
) -> None:
    """Refine coarse masks (Algorithm 2). Outputs are cubes centred on each input's centre of mass.

    Example: latentmed shape refine runs/lsd --input data/coarse --out out/refined --steps 5
    """
    import numpy as np

    from latentmed.data.phantoms.spine3d import save_mask_nifti
    from latentmed.shape.evaluate import refine_cubes
    from latentmed.shape.models import load_shape_model
    from latentmed.shape.volumes import list_masks, load_cube

    model = load_shape_model(run)
    size = model.config.image_size
    files = list_masks(input)
    cubes = np.stack([load_cube(f, size, threshold=threshold) for f in files])
    with _progress() as bar:
        task = bar.add_task("refine", total=len(files))
        refined, sec = refine_cubes(model, cubes, steps=steps, batch_size=batch_size, seed=seed,
                                    progress=lambda k: bar.advance(task, k))
    for f, vol in zip(files, refined):
        save_mask_nifti(vol, Path(out) / f.name)
    console.print(f"Refined {len(files)} masks into {out} ({sec:.3f} s per sample)")


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
    import torch

    from latentmed.data.phantoms.spine3d import save_mask_nifti
    from latentmed.errors import expect
    from latentmed.shape.models import load_shape_model

    expect(n >= 1, f"--n {n}: expected at least 1.")
    model = load_shape_model(run)
    generator = torch.Generator().manual_seed(seed)
    probs = model.sample(n, generator=generator)
    for i, p in enumerate(probs[:, 0].cpu().numpy()):
        save_mask_nifti(p > 0.5, Path(out) / f"sample_{i:04d}.nii.gz")
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
) -> None:
    """Table 1 of the paper: Dice, VS, SEN, SPEC, NMI, kappa (mean ± std) for the input and each model.

    Example: latentmed shape evaluate --input data/coarse --truth data/spine --run VAE=runs/vae
    --run LSD-EBM=runs/lsd --out out/eval
    """
    from latentmed.errors import expect
    from latentmed.shape.evaluate import evaluate as run_evaluation
    from latentmed.shape.evaluate import latent_variance_trace, load_pairs
    from latentmed.shape.models import LSDEBM, load_shape_model
    from latentmed.viz.shape import save_latent_variance_plot, save_refinement_figure

    models = {"input": None}
    for item in run or []:
        expect("=" in item, f"--run {item!r}: expected NAME=RUN_DIR, e.g. LSD-EBM=runs/lsd.")
        name, directory = item.split("=", 1)
        models[name.strip()] = load_shape_model(directory)
    sizes = {m.config.image_size for m in models.values() if m is not None}
    expect(len(sizes) <= 1, f"the runs use different cube sizes {sorted(sizes)}; evaluate them separately.")
    size = size or (sizes.pop() if sizes else 64)
    names, coarse, truth_cubes = load_pairs(input, truth, size)
    with console.status(f"refining {len(names)} cases with {len(models) - 1} model(s)"):
        result, outputs = run_evaluation(models, coarse, truth_cubes, names, steps=steps, seed=seed,
                                         keep_outputs=True)
    result.save(out)
    traces = {name: latent_variance_trace(m, coarse, steps=steps or m.config.num_steps, seed=seed)
              for name, m in models.items() if isinstance(m, LSDEBM)}
    if traces:
        save_latent_variance_plot(traces, Path(out) / "latent_variance.png")
    for i in range(min(figures, len(names))):
        save_refinement_figure(truth_cubes[i], {k: v[i] for k, v in outputs.items()},
                               Path(out) / f"case_{i:03d}.png", title=names[i])
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
    from latentmed.data.phantoms.spine3d import save_mask_nifti
    from latentmed.shape.volumes import is_nifti, list_masks, load_mask, simulate_thick_slices

    files = list_masks(inp) if inp.is_dir() else [inp]
    for i, f in enumerate(files):
        mask, info = load_mask(f, threshold=threshold)
        coarse = simulate_thick_slices(mask, thickness, axis, threshold=partial_volume, mode=mode,
                                       boundary_noise=noise, blobs=blobs, seed=seed + i)
        target = out / f.name if inp.is_dir() else (out if is_nifti(out) else out / f.name)
        save_mask_nifti(coarse, target)
    console.print(f"Degraded {len(files)} mask(s) into {out}")
