"""`latentmed dae ...`: train, encode, reconstruct, sample, interpolate."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from latentmed.cli._common import (console, data_options, device_option, friendly_errors, given_options,
                                   print_notice, resolve_device)

app = typer.Typer(help="Diffusion autoencoders: train, encode (z_sem, x_T), reconstruct, sample, interpolate.",
                  no_args_is_help=True)

DATA_HELP = "Images: a folder of PNG/JPEG/TIFF, a .npy/.npz (MedMNIST layout too), a NIfTI file or a DICOM series."


def _device(device: str) -> str:  # --device is resolved on parsing; kept for callers passing "auto"
    return resolve_device(device)


@app.command()
@friendly_errors
@data_options
def train(ctx: typer.Context,
          data: Path = typer.Option(..., "--data", help=DATA_HELP),
          out: Path = typer.Option(..., "--out", help="Run folder; training resumes if it holds a checkpoint."),
          config: Optional[Path] = typer.Option(None, "--config", help="YAML run config (sections: preset, model, "
                                                "objective, train, data, latent). Options given here beat it."),
          labels: Optional[Path] = typer.Option(None, "--labels", help="Optional labels CSV; its ids are checked "
                                                "against the images (training itself uses no labels)."),
          id_column: str = typer.Option("id", help="Id column of the --labels CSV."),
          allow_unmatched: bool = typer.Option(False, "--allow-unmatched", help="Accept --labels rows whose id "
                                               "matches no image (they are ignored)."),
          preset: str = typer.Option("tiny", help="tiny | diffae-64 | vertebra-96."),
          objective: str = typer.Option("two-phase", help="baseline | one-phase | two-phase."),
          steps: int = typer.Option(1000, help="Training steps of the DAE (stage 1).", min=1),
          latent_steps: int = typer.Option(2000, "--latent-steps", help="Stage 2: training steps of the latent "
                                           "DDIM on z_sem, which `dae sample` and `evaluate generation` need "
                                           "(latent.steps); 0 skips it.", min=0),
          batch_size: int = typer.Option(16, help="Batch size.", min=1),
          size: Optional[int] = typer.Option(None, help="Resize images to this size.", min=1,
                                             show_default="the preset's, 32 for tiny"),
          channels: int = typer.Option(1, help="1 (grayscale) or 3 (RGB)."),
          read: Optional[dict] = None,
          set_: List[str] = typer.Option([], "--set", help="Config override KEY=VALUE, e.g. train.lr=2e-4 "
                                         "(repeatable).")) -> None:
    """Train a DAE (stage 1), then its latent DDIM (stage 2, --latent-steps) on unlabelled images.

    Example: latentmed dae train --data spine/images --preset tiny --objective two-phase --steps 2000 --out runs/spine
    """
    from latentmed.config import merge_config
    from latentmed.dae import DAERunConfig, train_dae

    options = given_options(ctx, {"preset": "preset", "objective": "objective.name", "steps": "train.steps",
                                  "latent_steps": "latent.steps", "batch_size": "train.batch_size",
                                  "size": "data.size", "channels": "data.channels"})
    options["data.path"] = data
    options.update({f"data.{key}": value for key, value in (read or {}).items()})
    cfg = merge_config(DAERunConfig, config, set_, options)
    then = f", then its latent DDIM for {cfg.latent.steps} steps" if cfg.latent.steps else " (no latent DDIM)"
    console.print(f"Training a {cfg.preset} DAE ({cfg.objective.name}) for {cfg.train.steps} steps{then}, "
                  f"on {data} -> {out}")
    result = train_dae(cfg, out, labels=labels, id_column=id_column, allow_unmatched=allow_unmatched,
                       report=print_notice)
    latent = f", {result.run_dir}/latent/model (latent DDIM)" if cfg.latent.steps else ""
    console.print(f"Done: {result.run_dir}/model (EMA weights){latent}, {result.log}")


@app.command()
@friendly_errors
@data_options
def encode(run: Path = typer.Argument(..., help="DAE run folder."),
           data: Path = typer.Option(..., "--data", help=DATA_HELP),
           out: Path = typer.Option(..., "--out", help="Output .npz with ids, z_sem (and x_T), model_id."),
           stochastic: bool = typer.Option(False, "--stochastic", help="Also compute x_T by DDIM inversion."),
           steps: int = typer.Option(250, help="Inversion steps for x_T (the papers: 250).", min=1),
           batch_size: int = typer.Option(64, help="Images per batch.", min=1),
           read: Optional[dict] = None,
           device: str = device_option()) -> None:
    """Encode images to z_sem (and x_T with --stochastic), keyed by image id.

    Example: latentmed dae encode runs/spine --data spine/images --out latents.npz
    """
    from latentmed.latent.encode import encode_to_file

    lat = encode_to_file(run, data, out, stochastic_steps=steps if stochastic else 0, batch_size=batch_size,
                         read=read, device=_device(device), report=print_notice)
    console.print(f"Wrote {out}: {len(lat.ids)} latents of dim {lat.z_sem.shape[1]}"
                  + (" with x_T" if stochastic else ""))


@app.command()
@friendly_errors
@data_options
def reconstruct(run: Path = typer.Argument(..., help="DAE run folder."),
                data: Path = typer.Option(..., "--data", help=DATA_HELP),
                out: Path = typer.Option(..., "--out", help="Output folder (grid.png + one PNG per image)."),
                steps: int = typer.Option(100, help="DDIM decoding steps (inversion uses the same grid).", min=1),
                inversion: bool = typer.Option(True, "--inversion/--random", help="x_T by inversion or random."),
                limit: int = typer.Option(16, help="Reconstruct at most this many images.", min=1),
                seed: int = typer.Option(0, help="Seed of random x_T.", min=0),
                read: Optional[dict] = None,
                device: str = device_option()) -> None:
    """Reconstruct images (x_T by DDIM inversion, or random) and report PSNR.

    Example: latentmed dae reconstruct runs/spine --data spine/images --out recon --steps 50
    """
    from latentmed.dae.workflow import reconstruct_images

    psnr = reconstruct_images(run, data, out, steps=steps, inversion=inversion, limit=limit, seed=seed, read=read,
                              device=_device(device), report=print_notice)
    console.print(f"Wrote {out}/grid.png (top: input, bottom: reconstruction). Mean PSNR {psnr:.2f} dB "
                  f"({'inversion' if inversion else 'random x_T'}, {steps} steps).")


@app.command()
@friendly_errors
def sample(run: Path = typer.Argument(..., help="DAE run folder with a latent DDIM."),
           out: Path = typer.Option(..., "--out", help="Output folder."),
           n: int = typer.Option(16, "--n", help="Number of images.", min=1),
           steps: int = typer.Option(100, help="DDIM steps of the image decoder.", min=1),
           latent_steps: int = typer.Option(100, help="DDIM steps of the latent DDIM.", min=1),
           seed: int = typer.Option(0, help="Random seed.", min=0),
           device: str = device_option()) -> None:
    """Sample new images: z_sem from the latent DDIM, then decode with random x_T.

    Example: latentmed dae sample runs/spine --n 16 --out samples
    """
    from latentmed.dae.workflow import sample_images

    sample_images(run, out, n=n, steps=steps, latent_steps=latent_steps, seed=seed, device=_device(device))
    console.print(f"Wrote {n} samples and {out}/grid.png")


@app.command()
@friendly_errors
@data_options
def interpolate(run: Path = typer.Argument(..., help="DAE run folder."),
                a: str = typer.Argument(..., help="First image: a file, or an id in --data."),
                b: str = typer.Argument(..., help="Second image: a file, or an id in --data."),
                out: Path = typer.Option(Path("interpolation.png"), "--out", help="Output strip (PNG)."),
                data: Optional[Path] = typer.Option(None, "--data", help="Look A and B up by id here."),
                n: int = typer.Option(8, "--n", help="Images in the strip, ends included.", min=1),
                steps: int = typer.Option(100, help="DDIM steps (inversion and decoding).", min=1),
                read: Optional[dict] = None,
                device: str = device_option()) -> None:
    """Interpolate between two images (slerp on z_sem and x_T) and write a strip.

    Example: latentmed dae interpolate runs/spine s0001 s0002 --data spine/images --n 8 --out strip.png
    """
    from latentmed.dae.workflow import interpolate_images

    interpolate_images(run, a, b, out, data=data, n=n, steps=steps, read=read, device=_device(device),
                       report=print_notice)
    console.print(f"Wrote {out}")
