"""Baseline vs one-phase vs two-phase DAE training, same data and budget (two-phase paper, Table 4).

Trains three DAEs per data set (``baseline``: eps + linear-beta; ``one-phase``: v + sc-4;
``two-phase``: t = 1 for the first quarter of the steps, then v + sc-4) with the same
TrainConfig and seed, on the spine2d phantom and on scikit-learn's bundled handwritten digits
(8x8, upscaled; no download), and writes ``OUT/comparison.md`` + ``.json`` with stochastic
(random x_T) and inversion reconstruction PSNR/SSIM on held-out images. ``compare_methods`` runs
``train_and_evaluate`` per (data set, method); ``comparison_table`` lays the results out as one row
per (data set, method), like the paper's Table 4.

CPU (tiny preset; --steps 200 took 30 min for all six models on a busy 2-core machine; runs resume):

    OMP_NUM_THREADS=2 python experiments/compare_training.py --out runs/compare

GPU, real preset (scale the budget with the flags):

    python experiments/compare_training.py --preset diffae-64 --size 64 --steps 20000 --batch-size 64 \\
        --n-train 4000 --n-test 256 --eval-steps 10,20,50,100 --device cuda --out runs/compare-gpu
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from latentmed.evaluation import evaluate_reconstruction

METHODS = ("baseline", "one-phase", "two-phase")


# ---- one method and the table ----------------------------------------------------------------------------------------
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
    dae = train_dae(cfg, out_dir, dataset=train_set).model
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


# ---- data sets: the spine2d phantom and scikit-learn's bundled digits (no download) ----------------------------------
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


# ---- every (data set, method) ----------------------------------------------------------------------------------------
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



def main(argv: list[str] | None = None) -> dict:
    from latentmed.evaluation import write_report
    from latentmed.train import TrainConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/compare", help="output folder (runs resume when it exists)")
    p.add_argument("--datasets", default="spine2d,digits")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--preset", default="tiny", help="DAE preset (tiny, diffae-64, vertebra-96)")
    p.add_argument("--size", type=int, default=32, help="image size")
    p.add_argument("--steps", type=int, default=400, help="training steps per model (the budget)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--n-train", type=int, default=512)
    p.add_argument("--n-test", type=int, default=64)
    p.add_argument("--eval-steps", default="10,20", help="DDIM steps for reconstruction")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="evaluation device (training picks it through accelerate)")
    args = p.parse_args(argv)

    out = Path(args.out)
    n_total = args.n_train + args.n_test
    data: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name in [d for d in args.datasets.split(",") if d]:
        if name == "spine2d":
            images = spine2d_images(n_total, args.size, out / "data" / f"spine2d_{n_total}_{args.size}", seed=args.seed)
        elif name == "digits":
            images = digits_images(args.size, seed=args.seed)[:n_total]
        else:
            raise SystemExit(f"unknown data set {name!r}; expected spine2d or digits")
        data[name] = (images[: args.n_train], images[args.n_train: n_total])

    tcfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay,
                       warmup_steps=min(50, args.steps // 10), checkpoint_every=max(args.steps // 2, 1),
                       log_every=max(args.steps // 20, 1), seed=args.seed, progress=False)
    start = time.perf_counter()
    results = compare_methods(data, out, train_config=tcfg, methods=args.methods.split(","), preset=args.preset,
                              model_overrides={"image_size": args.size},
                              eval_steps=[int(s) for s in args.eval_steps.split(",")], seed=args.seed,
                              device=args.device)
    records = comparison_table(results)
    summary = winners(records)
    meta = {"command": "python experiments/compare_training.py " + " ".join(argv if argv is not None else
                                                                            __import__("sys").argv[1:]),
            "preset": args.preset, "size": args.size, "train steps": args.steps, "batch size": args.batch_size,
            "lr": args.lr, "EMA": args.ema_decay, "n train / test": f"{args.n_train} / {args.n_test}",
            "seed": args.seed, "total minutes": round((time.perf_counter() - start) / 60, 1)}
    paths = write_report(out, "comparison", "DAE training methods: reconstruction of held-out images", records,
                         meta=meta, notes=["PSNR in dB on [-1, 1]; stochastic = random x_T, inversion = DDIM-inverted "
                                           "x_T, same step grid.", "", *[f"- {s}" for s in summary]])
    print(Path(paths["markdown"]).read_text())
    return {"records": records, "summary": summary, "paths": {k: str(v) for k, v in paths.items()}}


if __name__ == "__main__":
    print(json.dumps(main()["summary"], indent=2))
