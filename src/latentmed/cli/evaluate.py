"""`latentmed evaluate` commands: reconstruction and generation tables of a DAE run, segmentation folders."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latentmed.cli._common import console, friendly_errors, parse_list

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
def recon(
    run: Path = typer.Argument(..., help="DAE run folder (holding model/) or a save_pretrained model folder."),
    data: Path = typer.Option(..., "--data", help="Held-out images (folder, .npy/.npz, NIfTI, DICOM)."),
    steps: str = typer.Option("10,20,50", "--steps", help="Comma-separated DDIM step counts."),
    modes: str = typer.Option("stochastic,inversion", "--modes", help="stochastic (random x_T) and/or inversion."),
    out: Path = typer.Option(Path("report"), "--out", help="Output folder for recon.md / recon.json."),
    n: int = typer.Option(0, "--n", help="Evaluate the first N images (0: all)."),
    batch_size: int = typer.Option(32, "--batch-size"),
    seed: int = typer.Option(0, "--seed", help="Seed of the random x_T in stochastic mode."),
    fid: str = typer.Option("none", "--fid", help="FID features: none, encoder (the DAE's z_sem) or inception."),
    inception: Optional[Path] = typer.Option(None, "--inception", help="Local inception-2015-12-05.pt for --fid inception."),
    lpips_net: str = typer.Option("alex", "--lpips-net", help="LPIPS backbone: alex or vgg."),
    lpips_backbone: Optional[Path] = typer.Option(None, "--lpips-backbone", help="torchvision ImageNet weights (.pth/.safetensors)."),
    lpips_weights: Optional[Path] = typer.Option(None, "--lpips-weights", help="LPIPS v0.1 linear weights (alex.pth/vgg.pth)."),
    device: str = typer.Option("cpu", "--device"),
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
    dataset = open_images(data, size=dae.config.image_size, channels=dae.config.in_channels)
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
def generation(
    run: Path = typer.Argument(..., help="DAE run folder with a latent DDIM (latent/model)."),
    n: int = typer.Option(64, "--n", help="Number of samples."),
    out: Path = typer.Option(Path("report"), "--out"),
    data: Optional[Path] = typer.Option(None, "--data", help="Real images for FID (default: the run's training data)."),
    n_real: int = typer.Option(0, "--n-real", help="Use the first N real images (0: all)."),
    steps: str = typer.Option("10,20,50", "--steps", help="Decoder DDIM step counts."),
    latent_steps: int = typer.Option(50, "--latent-steps", help="DDIM steps of the latent sampler."),
    fid: str = typer.Option("encoder", "--fid", help="FID features: encoder (the DAE's z_sem), inception or none."),
    inception: Optional[Path] = typer.Option(None, "--inception", help="Local inception-2015-12-05.pt."),
    batch_size: int = typer.Option(32, "--batch-size"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Sample z_sem from the latent DDIM, decode, and write FID per decoder step count (+ sample grids).

    Example: latentmed evaluate generation runs/spine --n 256 --out report/
    """
    from latentmed.dae import load_dae, load_latent_ddim, load_run_config
    from latentmed.data import open_images
    from latentmed.errors import LatentmedError
    from latentmed.evaluation import evaluate_generation, resolve_feature_extractor, write_report
    from latentmed.viz import save_image_grid

    dae = load_dae(run, device=device)
    latent = load_latent_ddim(run, device=device)
    if data is None:
        data_path = load_run_config(run).data.path if (run / "config.yaml").is_file() else ""
        if not data_path:
            raise LatentmedError(f"{run}: no training data path recorded; pass the real images with --data DIR.")
        data = Path(data_path)
    extractor, desc = resolve_feature_extractor(fid, dae, str(inception) if inception else None)
    if hasattr(extractor, "to"):
        extractor = extractor.to(device)
    real = open_images(data, size=dae.config.image_size, channels=dae.config.in_channels)
    rows, samples = evaluate_generation(dae, latent, real, n=n, steps=parse_list(steps, int, "--steps"),
                                        latent_steps=latent_steps, batch_size=batch_size, seed=seed,
                                        fid_extractor=extractor, n_real=n_real or None)
    for s, images in samples.items():
        if images.ndim == 4:
            save_image_grid(images[:64], out / f"samples_steps{s}.png", nrow=8)
    meta = {**_meta_common(run, dae, desc), "real data": str(data), "n": n, "latent steps": latent_steps,
            "seed": seed}
    paths = write_report(out, "generation", "DAE generation (latent DDIM)", [r.as_dict() for r in rows], meta=meta,
                         notes=["fid_z: Frechet distance between sampled and real z_sem (latent DDIM fit only)."])
    console.print(Path(paths["markdown"]).read_text())
    console.print(f"wrote {paths['markdown']} and {paths['json']}")


@app.command("ppl")
@friendly_errors
def ppl(
    run: Path = typer.Argument(..., help="DAE run folder (holding model/) or a save_pretrained model folder."),
    data: Path = typer.Option(..., "--data", help="Images; 2k and 2k+1 form pair k."),
    pairs: int = typer.Option(4, "--pairs", help="Number of image pairs."),
    segments: int = typer.Option(100, "--segments", help="Slerp segments N (the paper: 100)."),
    steps: int = typer.Option(20, "--steps", help="DDIM steps for inversion and decoding."),
    out: Path = typer.Option(Path("report"), "--out"),
    lpips_net: str = typer.Option("alex", "--lpips-net", help="LPIPS backbone: alex or vgg."),
    lpips_backbone: Optional[Path] = typer.Option(None, "--lpips-backbone", help="torchvision ImageNet weights."),
    lpips_weights: Optional[Path] = typer.Option(None, "--lpips-weights", help="LPIPS v0.1 linear weights."),
    batch_size: int = typer.Option(32, "--batch-size"),
    device: str = typer.Option("cpu", "--device"),
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
    dataset = open_images(data, size=dae.config.image_size, channels=dae.config.in_channels)
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
