"""`latentmed segment`: zero-shot segmentation from a diffusion UNet's self-attention (DiffSeg)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latentmed.cli._common import console, friendly_errors, parse_list, progress_bar

app = typer.Typer(help="Zero-shot segmentation by merging a diffusion UNet's self-attention maps (DiffSeg).",
                  no_args_is_help=True)

RUN_HELP = "DiNO-Diffusion run (from `latentmed ldm train`) or a diffusers folder with unet/ (and vae/)."


def _config(timestep: int, threshold: str, grid: int, iterations: int, refine: bool, weighting: str,
            batch_size: int, seed: int, fp16: bool):
    from latentmed.segment.diffseg import DiffSegConfig

    taus = parse_list(threshold, float, "--threshold")
    return DiffSegConfig(timestep=timestep, threshold=taus[0] if len(taus) == 1 else tuple(taus), grid=grid,
                         iterations=iterations if len(taus) <= 1 else len(taus), refine=refine, weighting=weighting,
                         batch_size=batch_size, seed=seed, store_float16=fp16)


def _structures(text: str) -> dict[int, str]:
    from latentmed.errors import LatentmedError

    out = {}
    for item in parse_list(text, str, "--structures"):
        value, _, name = item.partition("=")
        try:
            out[int(value)] = name or f"label_{value}"
        except ValueError as exc:
            raise LatentmedError(f"--structures: expected items like 1=left_lung, got {item!r}.") from exc
    return out


_TIMESTEP = typer.Option(300, "--timestep", "-t", min=0, max=999,
                         help="Noise timestep of the single UNet pass, in [0, 1000).")
_THRESHOLD = typer.Option("0.05", "--threshold", help="Symmetric-KL merge threshold, or one per iteration (0.05,0.05,0.1).")
_GRID = typer.Option(16, "--grid", help="Anchor grid side (grid x grid anchors).", min=1)
_ITER = typer.Option(3, "--iterations", help="Merge iterations.", min=0)
_REFINE = typer.Option(False, "--refine/--no-refine", help="KMeans refinement initialised from the proposals.")
_WEIGHT = typer.Option("proportional", "--weighting", help="Resolution weights: proportional (to side) or uniform.")
_BATCH = typer.Option(4, "--batch-size", help="Images per UNet pass.", min=1)
_SEED = typer.Option(0, "--seed", help="Seed of the noise added to the latents.", min=0)
_FP16 = typer.Option(False, "--fp16-maps", help="Store attention maps in float16 (half the memory).")
_SIZE = typer.Option(None, "--size", help="Centre-crop and resize images to this side (default: native size).", min=1)
_LIMIT = typer.Option(None, "--limit", help="Use only the first N images.", min=1)


@app.command("zero-shot")
@friendly_errors
def zero_shot(
    run: Path = typer.Argument(..., help=RUN_HELP),
    data: Path = typer.Option(..., "--data", help="Image folder (labels.csv with an image column, or image files)."),
    out: Path = typer.Option(..., "--out", help="Output folder: masks/<id>.png, overlays/<id>.png, summary.json."),
    timestep: int = _TIMESTEP, threshold: str = _THRESHOLD, grid: int = _GRID, iterations: int = _ITER,
    refine: bool = _REFINE, weighting: str = _WEIGHT, batch_size: int = _BATCH, seed: int = _SEED,
    fp16: bool = _FP16, size: Optional[int] = _SIZE, limit: Optional[int] = _LIMIT,
) -> None:
    """Segment images without labels: one UNet pass at --timestep, self-attention merged into masks.

    Example: latentmed segment zero-shot runs/ldm --data data/chest2d --out seg/ --timestep 300 --threshold 0.05
    """
    from latentmed.segment.run import load_segmenter
    from latentmed.segment.run import zero_shot as run_zero_shot

    cfg = _config(timestep, threshold, grid, iterations, refine, weighting, batch_size, seed, fp16)
    segmenter = load_segmenter(run, cfg)
    with progress_bar("DiffSeg") as progress:
        summary = run_zero_shot(segmenter, data, out, size=size, limit=limit, progress=progress)
    console.print(f"{summary['images']} images, {summary['segments_mean']:.1f} segments on average -> {out}/masks, "
                  f"{out}/overlays")


@app.command("sweep")
@friendly_errors
def sweep(
    run: Path = typer.Argument(..., help=RUN_HELP),
    data: Path = typer.Option(..., "--data", help="Image folder."),
    truth: Path = typer.Option(..., "--truth", help="Truth label maps: DIR/masks/<id>.png or DIR/<id>.png."),
    out: Path = typer.Option(..., "--out", help="Output folder: sweep.json, table.md/csv, dice_vs_*.png, overlays/."),
    timesteps: str = typer.Option("50,100,200,300,400,500,700,900", "--timesteps", help="Timesteps to try."),
    thresholds: str = typer.Option("0.01,0.02,0.05,0.1,0.2,0.5,1.0", "--thresholds", help="Merge thresholds to try."),
    structures: str = typer.Option("1=left_lung,2=right_lung,3=heart", "--structures",
                                   help="Truth labels to score, value=name (0 is background)."),
    baseline_k: int = typer.Option(4, "--baseline-k", help="Clusters of the KMeans-on-intensities baseline.", min=1),
    timestep: int = _TIMESTEP, threshold: str = _THRESHOLD, grid: int = _GRID, iterations: int = _ITER,
    refine: bool = _REFINE, weighting: str = _WEIGHT, batch_size: int = _BATCH, seed: int = _SEED,
    fp16: bool = _FP16, size: Optional[int] = _SIZE, limit: Optional[int] = _LIMIT,
) -> None:
    """Dice per structure over timesteps x merge thresholds, against truth masks and a KMeans baseline.

    Example: latentmed segment sweep runs/ldm --data data/chest2d --truth data/chest2d --out seg_sweep/
    """
    from latentmed.segment.run import load_segmenter
    from latentmed.segment.run import sweep as run_sweep

    cfg = _config(timestep, threshold, grid, iterations, refine, weighting, batch_size, seed, fp16)
    segmenter = load_segmenter(run, cfg)
    with progress_bar("DiffSeg sweep") as progress:
        result = run_sweep(segmenter, data, truth, out, timesteps=parse_list(timesteps, int, "--timesteps"),
                           thresholds=parse_list(thresholds, float, "--thresholds"), structures=_structures(structures),
                           baseline_k=baseline_k, size=size, limit=limit, progress=progress)
    console.print((out / "table.md").read_text())
    console.print(f"best: t={result['best']['timestep']}, threshold={result['best']['threshold']:g} -> {out}")
