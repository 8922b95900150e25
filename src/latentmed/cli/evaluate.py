"""`latentmed evaluate` commands: reconstruction and generation tables of a DAE run, segmentation folders."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latentmed.cli._common import console, data_options, device_option, friendly_errors, parse_list, print_notice

app = typer.Typer(help="Evaluate DAE reconstructions and samples, and segmentation masks.", no_args_is_help=True)


@app.command("recon")
@friendly_errors
@data_options
def recon(
    run: Path = typer.Argument(..., help="DAE run folder (holding model/) or a save_pretrained model folder."),
    data: Path = typer.Option(..., "--data", help="Held-out images (folder, .npy/.npz, NIfTI, DICOM)."),
    steps: str = typer.Option("10,20,50", "--steps", help="Comma-separated DDIM step counts."),
    modes: str = typer.Option("stochastic,inversion", "--modes", help="stochastic (random x_T) and/or inversion."),
    out: Path = typer.Option(Path("report"), "--out", help="Output folder for recon.md / recon.json."),
    n: int = typer.Option(0, "--n", help="Evaluate the first N images (0: all).", min=0),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    seed: int = typer.Option(0, "--seed", help="Seed of the random x_T in stochastic mode.", min=0),
    fid: str = typer.Option("none", "--fid", help="FID features: none, encoder (the DAE's z_sem) or inception."),
    inception: Optional[Path] = typer.Option(None, "--inception", help="Local inception-2015-12-05.pt for --fid inception."),
    lpips_net: str = typer.Option("alex", "--lpips-net", help="LPIPS backbone: alex or vgg."),
    lpips_backbone: Optional[Path] = typer.Option(None, "--lpips-backbone", help="torchvision ImageNet weights (.pth/.safetensors)."),
    lpips_weights: Optional[Path] = typer.Option(None, "--lpips-weights", help="LPIPS v0.1 linear weights (alex.pth/vgg.pth)."),
    read: Optional[dict] = None,
    device: str = device_option(),
) -> None:
    """Reconstruct held-out images with random and inverted x_T; write PSNR/SSIM(/LPIPS/FID) per step count.

    Example: latentmed evaluate recon runs/spine --data heldout/ --steps 10,20,50 --out report/
    """
    from latentmed.evaluation.workflow import reconstruction_report

    paths = reconstruction_report(run, data, out, steps=parse_list(steps, int, "--steps"),
                                  modes=parse_list(modes, str, "--modes"), n=n or None, batch_size=batch_size,
                                  seed=seed, fid=fid, inception=inception, lpips_net=lpips_net,
                                  lpips_backbone=lpips_backbone, lpips_weights=lpips_weights, device=device,
                                  read={**(read or {}), "report": print_notice})
    _show(paths)


@app.command("generation")
@friendly_errors
@data_options
def generation(
    run: Path = typer.Argument(..., help="DAE run folder with a latent DDIM (latent/model)."),
    data: Path = typer.Option(..., "--data", help="Held-out real images the DAE was not trained on: half are the "
                              "reference, half the ceiling row."),
    train_data: Optional[Path] = typer.Option(None, "--train-data", help="The DAE's training images (PCA features, "
                                              "N(mean, cov) of their latents, memorisation) [default: the run's "
                                              "data.path]."),
    n: int = typer.Option(0, "--n", help="Samples per row (0: half the held-out images).", min=0),
    out: Path = typer.Option(Path("report"), "--out"),
    steps: int = typer.Option(30, "--steps", help="Decoder DDIM steps.", min=1),
    latent_steps: int = typer.Option(50, "--latent-steps", help="DDIM steps of the latent sampler.", min=1),
    k: int = typer.Option(3, "--k", help="Neighbourhood size of precision/recall (Kynkaenniemi et al.: 3).", min=1),
    pca: int = typer.Option(64, "--pca", help="Principal components of the pixel feature space.", min=1),
    grader: Optional[Path] = typer.Option(None, "--grader", help="Grader folder (latentmed grade fit) to read the "
                                          "samples' grade mix."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Labels CSV of the held-out images (id column), "
                                          "for the data's grade mix."),
    column: str = typer.Option("genant", "--column", help="Grade column of --labels."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    seed: int = typer.Option(0, "--seed", min=0),
    read: Optional[dict] = None,
    device: str = device_option(),
) -> None:
    """Do samples look like the data? Precision/recall, FID, grade mix and memorisation against held-out images.

    Rows: held-out real images (ceiling), the latent DDIM, z_sem ~ N(mean, cov) of the training
    latents, random z_sem (floor); feature spaces: z_sem and pixel PCA (no download).

    Example: latentmed evaluate generation runs/spine --data heldout/ --grader grader --labels heldout/labels.csv
    """
    from latentmed.evaluation.workflow import generation_report

    paths = generation_report(run, data, out, train_data=train_data, n=n or None, steps=steps,
                              latent_steps=latent_steps, k=k, pca=pca, grader=grader, labels=labels, column=column,
                              batch_size=batch_size, seed=seed, device=device,
                              read={**(read or {}), "report": print_notice})
    _show(paths)


@app.command("ppl")
@friendly_errors
@data_options
def ppl(
    run: Path = typer.Argument(..., help="DAE run folder (holding model/) or a save_pretrained model folder."),
    data: Path = typer.Option(..., "--data", help="Images; 2k and 2k+1 form pair k."),
    pairs: int = typer.Option(4, "--pairs", help="Number of image pairs.", min=1),
    segments: int = typer.Option(100, "--segments", help="Slerp segments N (the paper: 100).", min=1),
    steps: int = typer.Option(20, "--steps", help="DDIM steps for inversion and decoding.", min=1),
    out: Path = typer.Option(Path("report"), "--out"),
    lpips_net: str = typer.Option("alex", "--lpips-net", help="LPIPS backbone: alex or vgg."),
    lpips_backbone: Optional[Path] = typer.Option(None, "--lpips-backbone", help="torchvision ImageNet weights."),
    lpips_weights: Optional[Path] = typer.Option(None, "--lpips-weights", help="LPIPS v0.1 linear weights."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    read: Optional[dict] = None,
    device: str = device_option(),
) -> None:
    """Perceptual path length of interpolations between image pairs (LPIPS with weights, else MSE).

    Example: latentmed evaluate ppl runs/spine --data heldout/ --pairs 8 --segments 100 --out report/
    """
    from latentmed.evaluation.workflow import ppl_report

    paths = ppl_report(run, data, out, pairs=pairs, segments=segments, steps=steps, lpips_net=lpips_net,
                       lpips_backbone=lpips_backbone, lpips_weights=lpips_weights, batch_size=batch_size,
                       device=device, read={**(read or {}), "report": print_notice})
    _show(paths)


@app.command("segmentation")
@friendly_errors
def segmentation(
    truth: Path = typer.Option(..., "--truth", help="Folder of ground-truth NIfTI masks."),
    pred: Path = typer.Option(..., "--pred", help="Folder of predicted NIfTI masks, named like the truth files."),
    out: Path = typer.Option(Path("report"), "--out"),
    label: Optional[int] = typer.Option(None, "--label", help="Score mask == LABEL (multi-label files)."),
    hausdorff: bool = typer.Option(True, "--hausdorff/--no-hausdorff", help="Also compute Hausdorff-95 (mm)."),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Score only cases present in both folders."),
) -> None:
    """Dice, VS, sensitivity, specificity, NMI, Cohen's kappa (and HD95) per case and on average.

    Example: latentmed evaluate segmentation --truth masks/gt --pred masks/pred --out report/
    """
    from latentmed.evaluation.workflow import segmentation_report

    _show(segmentation_report(truth, pred, out, label=label, hausdorff=hausdorff, allow_missing=allow_missing))


def _show(paths: dict) -> None:
    console.print(Path(paths["markdown"]).read_text())
    console.print(f"wrote {paths['markdown']} and {paths['json']}")
