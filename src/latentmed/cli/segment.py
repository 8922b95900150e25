"""`latentmed segment`: zero-shot segmentation from a diffusion UNet's self-attention (DiffSeg)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latentmed.cli._common import console, friendly_errors, parse_list, progress_bar

app = typer.Typer(help="Zero-shot segmentation by merging a diffusion UNet's self-attention maps (DiffSeg).",
                  no_args_is_help=True)

RUN_HELP = ("DiNO-Diffusion run (from `latentmed ldm train`) or a diffusers folder like Stable Diffusion's: unet/, "
            "vae/, optionally scheduler/, text_encoder/ + tokenizer/.")


def _config(recipe: str, threshold: str | None, iterations: int | None, **given):
    """Explicit options > the recipe > DiffSeg's defaults (:func:`latentmed.segment.diffseg.diffseg_config`)."""
    from latentmed.segment.diffseg import diffseg_config

    if threshold is not None:
        taus = parse_list(threshold, float, "--threshold")
        given["threshold"] = taus[0] if len(taus) == 1 else tuple(taus)
        iterations = iterations if len(taus) <= 1 else len(taus)
    return diffseg_config(recipe, iterations=iterations, **given)


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


def _load(run: Path, context: Optional[Path], recipe: str, threshold, iterations, **given):
    from latentmed.segment.load import load_segmenter

    segmenter = load_segmenter(run, _config(recipe, threshold, iterations, **given), context=context)
    cfg = segmenter.diffseg.config
    where = (f"{segmenter.image_channels}x{segmenter.image_size}x{segmenter.image_size} (the model's input)"
             if segmenter.image_size else "native size")
    console.print(f"DiffSeg ({recipe} recipe): t={cfg.timestep}, threshold={cfg.threshold}, {cfg.iterations} "
                  f"iterations, {cfg.grid}x{cfg.grid} anchors, merge={cfg.merge}{' (fp16 KL)' if cfg.kl_fp16 else ''}, "
                  f"refine={'on' if cfg.refine else 'off'}; images at {where}; "
                  f"empty context: {'given' if segmenter.context is not None else 'zero tokens'}",
                  highlight=False, markup=False, soft_wrap=True)
    return segmenter


_RECIPE = typer.Option("latentmed", "--recipe", help="Settings to start from: latentmed (threshold 0.05) or reference "
                       "(google/diffseg's benchmark: t=300, threshold 1.1, 3 iterations, 16x16 anchors, reference "
                       "merge with fp16 KL, no refinement). Options given explicitly override the recipe.")
_CONTEXT = typer.Option(None, "--context", help="The empty context as a .safetensors tensor of tokens x D (default: "
                        "the folder's CLIP text encoding of the empty prompt; zero tokens without a text encoder).")
_TIMESTEP = typer.Option(None, "--timestep", "-t", min=0, max=999, show_default="300",
                         help="Noise timestep of the single UNet pass, in [0, 1000).")
_THRESHOLD = typer.Option(None, "--threshold", show_default="0.05; reference recipe 1.1",
                          help="Symmetric-KL merge threshold, or one per iteration (0.05,0.05,0.1).")
_GRID = typer.Option(None, "--grid", help="Anchor grid side (grid x grid anchors).", min=1, show_default="16")
_ITER = typer.Option(None, "--iterations", help="Merge iterations.", min=1, show_default="3")
_REFINE = typer.Option(None, "--refine/--no-refine", help="KMeans refinement initialised from the proposals.",
                       show_default="off")
_MERGE = typer.Option(None, "--merge", show_default="reference",
                      help="Later merge iterations: reference (google/diffseg: every proposal within the threshold, "
                           "merged ones included) or greedy (only not-yet-merged ones).")
_KL16 = typer.Option(None, "--kl-fp16/--no-kl-fp16", show_default="off; reference recipe on",
                     help="First merge iteration's KL in float16, as google/diffseg.")
_WEIGHT = typer.Option(None, "--weighting", show_default="proportional",
                       help="Resolution weights: proportional (to side) or uniform.")
_BATCH = typer.Option(4, "--batch-size", help="Images per UNet pass.", min=1)
_SEED = typer.Option(0, "--seed", help="Seed of the noise added to the latents.", min=0)
_FP16 = typer.Option(False, "--fp16-maps", help="Store attention maps in float16 (half the memory).")
_SIZE = typer.Option(None, "--size", help="Centre-crop and resize images to this side (default: the model's size for "
                     "a diffusers folder, else native).", min=1)
_LIMIT = typer.Option(None, "--limit", help="Use only the first N images.", min=1)


@app.command("zero-shot")
@friendly_errors
def zero_shot(
    run: Path = typer.Argument(..., help=RUN_HELP),
    data: Path = typer.Option(..., "--data", help="Image folder (labels.csv with an image column, or image files)."),
    out: Path = typer.Option(..., "--out", help="Output folder: masks/<id>.png, overlays/<id>.png, summary.json."),
    recipe: str = _RECIPE, context: Optional[Path] = _CONTEXT,
    timestep: Optional[int] = _TIMESTEP, threshold: Optional[str] = _THRESHOLD, grid: Optional[int] = _GRID,
    iterations: Optional[int] = _ITER, refine: Optional[bool] = _REFINE, merge: Optional[str] = _MERGE,
    kl_fp16: Optional[bool] = _KL16, weighting: Optional[str] = _WEIGHT, batch_size: int = _BATCH,
    seed: int = _SEED, fp16: bool = _FP16, size: Optional[int] = _SIZE, limit: Optional[int] = _LIMIT,
) -> None:
    """Segment images without labels: one UNet pass at --timestep, self-attention merged into masks.

    Example: latentmed segment zero-shot SD_FOLDER --data images/ --out seg/ --recipe reference
    """
    from latentmed.segment.run import zero_shot as run_zero_shot

    segmenter = _load(run, context, recipe, threshold, iterations, timestep=timestep, grid=grid, refine=refine,
                      merge=merge, kl_fp16=kl_fp16, weighting=weighting, batch_size=batch_size, seed=seed,
                      store_float16=fp16)
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
    out: Path = typer.Option(..., "--out", help="Output folder: sweep.json, table.md, dice_vs_*.png, overlays/."),
    timesteps: str = typer.Option("50,100,200,300,400,500,700,900", "--timesteps", help="Timesteps to try."),
    thresholds: str = typer.Option("0.01,0.02,0.05,0.1,0.2,0.5,1.0", "--thresholds", help="Merge thresholds to try."),
    structures: str = typer.Option("1=left_lung,2=right_lung,3=heart", "--structures",
                                   help="Truth labels to score, value=name (0 is background)."),
    baseline_k: int = typer.Option(4, "--baseline-k", help="Clusters of the KMeans-on-intensities baseline.", min=1),
    recipe: str = _RECIPE, context: Optional[Path] = _CONTEXT,
    timestep: Optional[int] = _TIMESTEP, threshold: Optional[str] = _THRESHOLD, grid: Optional[int] = _GRID,
    iterations: Optional[int] = _ITER, refine: Optional[bool] = _REFINE, merge: Optional[str] = _MERGE,
    kl_fp16: Optional[bool] = _KL16, weighting: Optional[str] = _WEIGHT, batch_size: int = _BATCH,
    seed: int = _SEED, fp16: bool = _FP16, size: Optional[int] = _SIZE, limit: Optional[int] = _LIMIT,
) -> None:
    """Scores per structure over timesteps x merge thresholds, against truth masks and KMeans baselines.

    Our best-union Dice beside the papers' scores (DiNO-Diffusion: best candidate Dice; DiffSeg:
    Hungarian pixel accuracy and mIoU). Example:
    latentmed segment sweep runs/ldm --data data/chest2d --truth data/chest2d --out seg_sweep/
    """
    from latentmed.segment.report import write_sweep
    from latentmed.segment.run import SweepSettings
    from latentmed.segment.run import sweep as run_sweep

    segmenter = _load(run, context, recipe, threshold, iterations, timestep=timestep, grid=grid, refine=refine,
                      merge=merge, kl_fp16=kl_fp16, weighting=weighting, batch_size=batch_size, seed=seed,
                      store_float16=fp16)
    settings = SweepSettings(timesteps=parse_list(timesteps, int, "--timesteps"),
                             thresholds=parse_list(thresholds, float, "--thresholds"),
                             structures=_structures(structures), baseline_k=baseline_k, size=size, limit=limit)
    with progress_bar("DiffSeg sweep") as progress:
        result = run_sweep(segmenter, data, truth, settings, progress=progress)
    write_sweep(result, out)
    console.print((out / "table.md").read_text(), highlight=False, markup=False)
    bt, bh = result.best
    console.print(f"best (union Dice): t={result.timesteps[bt]}, threshold={result.thresholds[bh]:g} -> {out}")
