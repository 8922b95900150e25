"""The training-method comparison (two-phase paper, Table 4): same data, same budget, three objectives.

``compare_methods`` trains one DAE per objective (``baseline``: eps + linear-beta;
``one-phase``: v + sc-4; ``two-phase``: t = 1 for the first quarter, then v + sc-4) on the
same training images with the same :class:`~latentmed.train.TrainConfig`, and evaluates
stochastic and inversion reconstruction of the same held-out images. ``comparison_table``
lays the results out as one row per (data set, method).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from latentmed.evaluation.reconstruction import evaluate_reconstruction

METHODS = ("baseline", "one-phase", "two-phase")


def train_and_evaluate(method: str, train_set, test_images: torch.Tensor, out_dir: str | os.PathLike, *,
                       train_config, preset: str = "tiny", model_overrides: dict | None = None,
                       eval_steps: Sequence[int] = (10, 20), batch_size: int = 32, seed: int = 0,
                       device: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Train (or resume) one DAE with objective ``method`` in ``out_dir``; evaluate its reconstructions.

    Returns ``{"method", "train_seconds", "rows": [MetricRow.as_dict()...]}``.
    """
    from latentmed.dae import DAERunConfig, LatentTrainConfig, ObjectiveConfig, train_dae

    cfg = DAERunConfig(preset=preset, model=dict(model_overrides or {}), objective=ObjectiveConfig(name=method),
                       train=train_config, latent=LatentTrainConfig(steps=0), preview_steps=10)
    start = time.perf_counter()
    dae = train_dae(cfg, out_dir, dataset=train_set)
    train_seconds = time.perf_counter() - start
    if device:
        dae = dae.to(device)
    rows = evaluate_reconstruction(dae, test_images, steps=eval_steps, batch_size=batch_size, seed=seed,
                                   progress=progress)
    return {"method": method, "train_seconds": round(train_seconds, 1), "model_id": dae.model_id,
            "rows": [r.as_dict() for r in rows]}


def comparison_table(results: dict[str, list[dict[str, Any]]],
                     metrics: Sequence[str] = ("psnr", "ssim")) -> list[dict[str, Any]]:
    """Flatten ``{dataset: [train_and_evaluate(...) results]}`` to one record per (data set, method).

    Columns are ``<mode>@<steps> <metric>`` (e.g. ``stochastic@20 psnr``), so the table reads
    like the two-phase paper's Table 4.
    """
    records = []
    for dataset, runs in results.items():
        for run in runs:
            rec: dict[str, Any] = {"data": dataset, "method": run["method"]}
            for row in run["rows"]:
                for m in metrics:
                    if m in row:
                        rec[f"{row['mode']}@{row['steps']} {m}"] = row[m]
            rec["train s"] = run["train_seconds"]
            records.append(rec)
    return records


def winners(records: Sequence[dict[str, Any]]) -> list[str]:
    """One sentence per (data set, column): which method is best, and by how much over the runner-up."""
    out = []
    for dataset in dict.fromkeys(r["data"] for r in records):
        group = [r for r in records if r["data"] == dataset]
        columns = [c for c in group[0] if "@" in c]
        for col in columns:
            ranked = sorted(group, key=lambda r: r[col], reverse=True)  # PSNR and SSIM: higher is better
            if len(ranked) >= 2:
                best, second = ranked[0], ranked[1]
                out.append(f"{dataset} {col}: best {best['method']} ({best[col]:.4g}), "
                           f"+{best[col] - second[col]:.4g} over {second['method']} ({second[col]:.4g})")
    return out


def spine2d_images(n: int, size: int, folder: str | os.PathLike, seed: int = 0) -> torch.Tensor:
    """``n`` spine2d phantoms ``[n, 1, size, size]`` in [-1, 1] (rendered at 2x and downsized, cached in ``folder``)."""
    from latentmed.data import open_images
    from latentmed.data.phantoms.spine2d import generate_spine2d

    folder = Path(folder)
    if not (folder / "labels.csv").is_file():
        generate_spine2d(folder, n, size=2 * size, seed=seed, overwrite=True)
    ds = open_images(folder / "images", size=size)
    if len(ds) < n:
        raise ValueError(f"{folder} holds {len(ds)} phantoms, fewer than {n}; delete it to regenerate.")
    return torch.stack([ds[i]["image"] for i in range(n)])


def digits_images(size: int, seed: int = 0) -> torch.Tensor:
    """scikit-learn's bundled 8x8 handwritten digits (1797, no download), upscaled to ``size``, in [-1, 1], shuffled."""
    from sklearn.datasets import load_digits

    import torch.nn.functional as F

    x = torch.from_numpy(load_digits().images).float()[:, None] / 16.0 * 2 - 1
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(-1, 1)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return x[perm]


def as_dataset(images: torch.Tensor):
    """Images ``[N, C, H, W]`` in [-1, 1] as an :class:`~latentmed.data.ImageDataset` (kept in memory)."""
    from latentmed.data import open_images

    return open_images(images.numpy(), value_range=(-1.0, 1.0), channels=images.shape[1])


def compare_methods(datasets: dict[str, tuple[torch.Tensor, torch.Tensor]], out_dir: str | os.PathLike, *,
                    train_config, methods: Sequence[str] = METHODS, preset: str = "tiny",
                    model_overrides: dict | None = None, eval_steps: Sequence[int] = (10, 20),
                    seed: int = 0, device: str | None = None,
                    log: Callable[[str], None] = print) -> dict[str, list[dict[str, Any]]]:
    """Run :func:`train_and_evaluate` for every (data set, method); ``datasets = {name: (train, test)}``."""
    results: dict[str, list[dict[str, Any]]] = {}
    for name, (train_images, test_images) in datasets.items():
        results[name] = []
        for method in methods:
            log(f"[{name}] training {method} ({train_config.steps} steps) ...")
            tcfg = dataclasses.replace(train_config, seed=seed)
            res = train_and_evaluate(method, as_dataset(train_images), test_images, Path(out_dir) / name / method,
                                     train_config=tcfg, preset=preset, model_overrides=model_overrides,
                                     eval_steps=eval_steps, seed=seed, device=device)
            log(f"[{name}] {method}: " + "; ".join(
                f"{r['mode']}@{r['steps']} PSNR {r['psnr']:.2f} SSIM {r['ssim']:.3f}" for r in res["rows"]))
            results[name].append(res)
    return results


__all__ = ["METHODS", "as_dataset", "compare_methods", "comparison_table", "digits_images",
           "spine2d_images", "train_and_evaluate", "winners"]
