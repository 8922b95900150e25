"""One function per ``latentmed evaluate`` command: load what the command names, evaluate, write the report.

Each returns the paths of the Markdown and JSON report (:func:`latentmed.evaluation.report.write_report`).
``read`` holds further :func:`latentmed.data.open_images` arguments (axis, window, slices, report, ...).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from latentmed.errors import LatentmedError
from latentmed.evaluation.report import write_report


def load_lpips(net: str = "alex", backbone: str | os.PathLike | None = None,
               weights: str | os.PathLike | None = None, device: str = "cpu"):
    """LPIPS from local files, or ``None`` when neither the backbone nor the linear weights are given."""
    if backbone is None and weights is None:
        return None
    from latentmed.metrics.lpips import LPIPS

    return LPIPS.from_files(net, backbone, weights).to(device)


def _run_meta(run, dae, fid_features: str) -> dict:
    return {"run": str(run), "model_id": dae.model_id, "image_size": dae.config.image_size,
            "schedule": dae.config.schedule, "prediction": dae.config.prediction, "FID features": fid_features}


def reconstruction_report(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
                          steps: Sequence[int] = (10, 20, 50), modes: Sequence[str] = ("stochastic", "inversion"),
                          n: int | None = None, batch_size: int = 32, seed: int = 0, fid: str = "none",
                          inception: str | os.PathLike | None = None, lpips_net: str = "alex",
                          lpips_backbone: str | os.PathLike | None = None,
                          lpips_weights: str | os.PathLike | None = None, device: str = "cpu",
                          read: dict | None = None) -> dict[str, Path]:
    """``evaluate recon``: reconstruct held-out images with random and inverted ``x_T``
    (:func:`~latentmed.evaluation.reconstruction.evaluate_reconstruction`); ``recon.md`` / ``recon.json``."""
    from latentmed.dae import load_dae
    from latentmed.data import open_images
    from latentmed.evaluation.reconstruction import evaluate_reconstruction, resolve_feature_extractor

    dae = load_dae(run, device=device)
    lp = load_lpips(lpips_net, lpips_backbone, lpips_weights, device)
    extractor, desc = resolve_feature_extractor(fid, dae, str(inception) if inception else None)
    if hasattr(extractor, "to"):
        extractor = extractor.to(device)
    dataset = open_images(data, size=dae.config.image_size, channels=dae.config.in_channels, **(read or {}))
    rows = evaluate_reconstruction(dae, dataset, steps=list(steps), modes=list(modes), n=n or None,
                                   batch_size=batch_size, seed=seed, lpips=lp, fid_extractor=extractor)
    meta = {**_run_meta(run, dae, desc), "data": str(data), "n": rows[0].extra["n"], "seed": seed,
            "LPIPS": f"{lpips_net} ({lpips_weights})" if lp is not None else "not computed (no weights given)"}
    return write_report(out, "recon", "DAE reconstruction", [r.as_dict() for r in rows], meta=meta,
                        notes=["stochastic: x_T ~ N(0, I); inversion: x_T by DDIM inversion on the same grid. "
                               "PSNR on the [-1, 1] range (data_range 2)."])


def generation_report(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
                      train_data: str | os.PathLike | None = None, n: int | None = None, steps: int = 30,
                      latent_steps: int = 50, k: int = 3, pca: int = 64, grader: str | os.PathLike | None = None,
                      labels: str | os.PathLike | None = None, column: str = "genant", batch_size: int = 64,
                      seed: int = 0, device: str = "cpu", read: dict | None = None) -> dict[str, Path]:
    """``evaluate generation``: samples of the run's latent DDIM against held-out images
    (:func:`~latentmed.evaluation.generation.evaluate_generation`); ``samples_<source>.png`` grids and
    ``generation.md`` / ``generation.json``. ``train_data`` defaults to the run's recorded ``data.path``,
    read with the run's options (``read`` overrides them)."""
    from latentmed.config import load_run_config
    from latentmed.dae import DAERunConfig, load_dae, load_latent_ddim
    from latentmed.data import open_images
    from latentmed.evaluation.generation import (GenerationSettings, evaluate_generation, grade2_fraction,
                                                 write_generation)
    from latentmed.latent.io import load_grader

    run, out = Path(run), Path(out)
    dae = load_dae(run, device=device)
    latent = load_latent_ddim(run, device=device)
    train_read = dict(read or {})
    if train_data is None:
        run_data = load_run_config(run, DAERunConfig).data if (run / "config.yaml").is_file() else None
        if run_data is None or not run_data.path:
            raise LatentmedError(f"{run}: no training data path recorded; pass the training images with "
                                 "--train-data DIR.")
        train_data, train_read = Path(run_data.path), {**run_data.read_options(), **(read or {})}  # as in training
    size, channels = dae.config.image_size, dae.config.in_channels
    held = open_images(data, size=size, channels=channels, labels=labels, **(read or {}))
    train = open_images(train_data, size=size, channels=channels, **train_read)
    meta = {"run": str(run), "model_id": dae.model_id, "held-out data": str(data), "training data": str(train_data),
            "grader": str(grader) if grader else "none"}
    if labels is not None:
        if column not in held.labels.columns:
            raise LatentmedError(f"{labels}: no column {column!r}; columns are {list(held.labels.columns)}. "
                                 "Pass --column.")
        meta["data G2+ (labels)"] = grade2_fraction(held.labels[column].to_numpy(dtype=float))
    settings = GenerationSettings(n=n or None, steps=steps, latent_steps=latent_steps, k=k, pca_components=pca,
                                  batch_size=batch_size, seed=seed)
    result = evaluate_generation(dae, latent, held, train, settings,
                                 grader=load_grader(grader) if grader is not None else None)
    return write_generation(result, out, meta=meta)


def ppl_report(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *, pairs: int = 4,
               segments: int = 100, steps: int = 20, lpips_net: str = "alex",
               lpips_backbone: str | os.PathLike | None = None, lpips_weights: str | os.PathLike | None = None,
               batch_size: int = 32, device: str = "cpu", read: dict | None = None) -> dict[str, Path]:
    """``evaluate ppl``: perceptual path length of slerp interpolations between image pairs ``(2k, 2k+1)``
    (LPIPS with weights, else MSE); ``ppl.md`` / ``ppl.json``."""
    from latentmed.dae import load_dae
    from latentmed.data import open_images
    from latentmed.evaluation.ppl import evaluate_interpolation_ppl

    dae = load_dae(run, device=device)
    lp = load_lpips(lpips_net, lpips_backbone, lpips_weights, device)
    dataset = open_images(data, size=dae.config.image_size, channels=dae.config.in_channels, **(read or {}))
    row = evaluate_interpolation_ppl(dae, dataset, pairs=pairs, segments=segments, steps=steps,
                                     distance=lp if lp is not None else "mse", batch_size=batch_size)
    meta = {"run": str(run), "model_id": dae.model_id, "data": str(data), "pairs": pairs,
            "distance": f"LPIPS {lpips_net}" if lp is not None else "MSE (no LPIPS weights given)"}
    return write_report(out, "ppl", "DAE interpolation: perceptual path length", [{**row.setting, **row.metrics}],
                        meta=meta, notes=["PPL = N * sum_i d(G(slerp(i/N)), G(slerp((i+1)/N))) over (z_sem, x_T), "
                                          "x_T by DDIM inversion.",
                                          f"per pair: {[round(v, 4) for v in row.extra['per_pair']]}"])


def segmentation_report(truth: str | os.PathLike, pred: str | os.PathLike, out: str | os.PathLike, *,
                        label: int | None = None, hausdorff: bool = True, allow_missing: bool = False
                        ) -> dict[str, Path]:
    """``evaluate segmentation``: per-case scores of two NIfTI mask folders and their mean
    (:func:`~latentmed.evaluation.segmentation.evaluate_segmentation_folders`); ``segmentation.md`` / ``.json``."""
    from latentmed.evaluation.segmentation import evaluate_segmentation_folders

    rows, means = evaluate_segmentation_folders(truth, pred, label=label, hausdorff=hausdorff,
                                                strict=not allow_missing)
    summary = {"case": f"mean (n={int(means['n'])})", **{k: v for k, v in means.items() if k in rows[0]}}
    notes = ["Argument order (truth, prediction): SEN = TP/(TP+FN), SPEC = TN/(TN+FP). Empty masks: Dice 1 when "
             "both are empty; HD95 is inf when one is (left out of the mean)."]
    if means.get("hausdorff95_inf"):
        notes.append(f"{int(means['hausdorff95_inf'])} case(s) with infinite HD95 (one mask empty).")
    return write_report(out, "segmentation", "Segmentation", rows + [summary],
                        meta={"truth": str(truth), "pred": str(pred), "label": label if label is not None else "binary"},
                        notes=notes)
