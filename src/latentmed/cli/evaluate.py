"""`latentmed evaluate` commands: reconstruction and generation tables of a DAE run, segmentation folders."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latentmed.cli._common import console, data_options, device_option, friendly_errors, parse_list, print_notice

app = typer.Typer(help="Evaluate DAE reconstructions and samples, and segmentation masks.", no_args_is_help=True)


def _lpips(net: str, backbone: Optional[Path], weights: Optional[Path]):
    if backbone is None and weights is None:
        return None
    from latentmed.metrics.image import LPIPS

    return LPIPS.from_files(net, backbone, weights)


def _meta_common(run: Path, dae, extractor_desc: str) -> dict:
    return {"run": str(run), "model_id": dae.model_id, "image_size": dae.config.image_size,
            "schedule": dae.config.schedule, "prediction": dae.config.prediction, "FID features": extractor_desc}


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
    from latentmed.dae import load_dae
    from latentmed.data import open_images
    from latentmed.evaluation import evaluate_reconstruction, resolve_feature_extractor, write_report

    step_list = parse_list(steps, int, "--steps")
    mode_list = parse_list(modes, str, "--modes")
    dae = load_dae(run, device=device)
    lp = _lpips(lpips_net, lpips_backbone, lpips_weights)
    if lp is not None:
        lp = lp.to(device)
    extractor, desc = resolve_feature_extractor(fid, dae, str(inception) if inception else None)
    if hasattr(extractor, "to"):
        extractor = extractor.to(device)
    dataset = open_images(data, size=dae.config.image_size, channels=dae.config.in_channels, report=print_notice,
                          **(read or {}))
    rows = evaluate_reconstruction(dae, dataset, steps=step_list, modes=mode_list, n=n or None,
                                   batch_size=batch_size, seed=seed, lpips=lp, fid_extractor=extractor)
    meta = {**_meta_common(run, dae, desc), "data": str(data), "n": rows[0].extra["n"], "seed": seed,
            "LPIPS": f"{lpips_net} ({lpips_weights})" if lp is not None else "not computed (no weights given)"}
    paths = write_report(out, "recon", "DAE reconstruction", [r.as_dict() for r in rows], meta=meta,
                         notes=["stochastic: x_T ~ N(0, I); inversion: x_T by DDIM inversion on the same grid. "
                                "PSNR on the [-1, 1] range (data_range 2)."])
    console.print(Path(paths["markdown"]).read_text())
    console.print(f"wrote {paths['markdown']} and {paths['json']}")


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
    from latentmed.dae import load_dae, load_latent_ddim, load_run_config
    from latentmed.data import open_images
    from latentmed.errors import LatentmedError
    from latentmed.evaluation import evaluate_generation, write_report
    from latentmed.evaluation.generation import COLUMNS, NOTES
    from latentmed.latent.io import load_grader
    from latentmed.viz import save_image_grid

    dae = load_dae(run, device=device)
    latent = load_latent_ddim(run, device=device)
    train_read = dict(read or {})
    if train_data is None:
        run_data = load_run_config(run).data if (run / "config.yaml").is_file() else None
        if run_data is None or not run_data.path:
            raise LatentmedError(f"{run}: no training data path recorded; pass the training images with "
                                 "--train-data DIR.")
        train_data, train_read = Path(run_data.path), {**run_data.read_options(), **(read or {})}  # as in training
    size, channels = dae.config.image_size, dae.config.in_channels
    held = open_images(data, size=size, channels=channels, report=print_notice, labels=labels, **(read or {}))
    train = open_images(train_data, size=size, channels=channels, report=print_notice, **train_read)
    truth = None
    if labels is not None:
        if column not in held.labels.columns:
            raise LatentmedError(f"{labels}: no column {column!r}; columns are {list(held.labels.columns)}. "
                                 "Pass --column.")
        truth = held.labels[column].to_numpy(dtype=float)
    g = load_grader(grader) if grader is not None else None
    result = evaluate_generation(dae, latent, held, train, n=n or None, steps=steps, latent_steps=latent_steps, k=k,
                                 pca_components=pca, grader=g, heldout_grades=truth, batch_size=batch_size,
                                 seed=seed)
    for source, images in result.images.items():
        if images.ndim == 4:
            save_image_grid(images[:64], out / f"samples_{source.split(' (')[0].replace(' ', '_')}.png", nrow=8)
    meta = {"run": str(run), "model_id": dae.model_id, "held-out data": str(data), "training data": str(train_data),
            **result.meta, "grader": str(grader) if grader else "none"}
    columns = [c for c in COLUMNS if g is not None or c not in ("G2+", "grades")]
    paths = write_report(out, "generation", "DAE generation: samples against held-out images", result.records(),
                         columns=columns, meta=meta, notes=NOTES)
    console.print(Path(paths["markdown"]).read_text())
    console.print(f"wrote {paths['markdown']} and {paths['json']}")


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
    from latentmed.dae import load_dae
    from latentmed.data import open_images
    from latentmed.evaluation import evaluate_interpolation_ppl, write_report

    dae = load_dae(run, device=device)
    lp = _lpips(lpips_net, lpips_backbone, lpips_weights)
    distance = lp.to(device) if lp is not None else "mse"
    dataset = open_images(data, size=dae.config.image_size, channels=dae.config.in_channels, report=print_notice,
                          **(read or {}))
    row = evaluate_interpolation_ppl(dae, dataset, pairs=pairs, segments=segments, steps=steps, distance=distance,
                                     batch_size=batch_size)
    meta = {"run": str(run), "model_id": dae.model_id, "data": str(data), "pairs": pairs,
            "distance": f"LPIPS {lpips_net}" if lp is not None else "MSE (no LPIPS weights given)"}
    paths = write_report(out, "ppl", "DAE interpolation: perceptual path length",
                         [{**row.setting, **row.metrics}], meta=meta,
                         notes=["PPL = N * sum_i d(G(slerp(i/N)), G(slerp((i+1)/N))) over (z_sem, x_T), x_T by "
                                "DDIM inversion.", f"per pair: {[round(v, 4) for v in row.extra['per_pair']]}"])
    console.print(Path(paths["markdown"]).read_text())
    console.print(f"wrote {paths['markdown']} and {paths['json']}")


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
    from latentmed.evaluation import evaluate_segmentation_folders, write_report

    rows, means = evaluate_segmentation_folders(truth, pred, label=label, hausdorff=hausdorff,
                                                strict=not allow_missing)
    summary = {"case": f"mean (n={int(means['n'])})", **{k: v for k, v in means.items() if k in rows[0]}}
    notes = ["Argument order (truth, prediction): SEN = TP/(TP+FN), SPEC = TN/(TN+FP). Empty masks: Dice 1 when "
             "both are empty; HD95 is inf when one is (left out of the mean)."]
    if means.get("hausdorff95_inf"):
        notes.append(f"{int(means['hausdorff95_inf'])} case(s) with infinite HD95 (one mask empty).")
    paths = write_report(out, "segmentation", "Segmentation", rows + [summary],
                         meta={"truth": str(truth), "pred": str(pred), "label": label if label is not None else "binary"},
                         notes=notes)
    console.print(Path(paths["markdown"]).read_text())
    console.print(f"wrote {paths['markdown']} and {paths['json']}")
