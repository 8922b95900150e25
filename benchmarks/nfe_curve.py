"""Network calls per counterfactual: reconstruction and counterfactual quality against the DDIM step grid.

On a trained tiny DAE (``--run`` with ``--data``, or trained here from a fresh ``spine2d`` phantom),
a hyperplane grader is fitted on z_sem (Genant G0 vs G2+G3, 30 % held out, as the demo); the
held-out images are inverted and decoded with each grid. For each grid the table gives the
network calls per counterfactual (inversion + decoding), reconstruction PSNR/SSIM (the unchanged
z_sem decoded from its own x_T, against the input) and the counterfactual follow slope (grade
of the re-encoded counterfactuals against the target grades 0..3). ``250+100`` is the papers'
pipeline (350 calls); the gap column is each grid's PSNR minus that one's.

    OMP_NUM_THREADS=1 python benchmarks/nfe_curve.py --out /tmp/nfe --train-steps 600
    OMP_NUM_THREADS=1 python benchmarks/nfe_curve.py --out /tmp/nfe --run RUN --data PHANTOM_DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

GRIDS = ((5, 5), (10, 10), (20, 20), (30, 30), (50, 50), (100, 100), (250, 100))
REFERENCE = (250, 100)
GRADES = (0, 1, 2, 3)


def _train(out: Path, steps: int, n_images: int, seed: int) -> tuple[Path, Path]:
    """A tiny two-phase DAE on a fresh phantom with the demo's settings (no latent DDIM)."""
    from latentmed.dae import DAERunConfig, LatentTrainConfig, ObjectiveConfig, train_dae
    from latentmed.data import open_images
    from latentmed.data.phantoms.spine2d import generate_spine2d
    from latentmed.train import TrainConfig

    phantom = out / "phantom"
    if not (phantom / "labels.csv").is_file():
        generate_spine2d(phantom, n=n_images, size=32, seed=seed, grade_weights=(0.4, 0.2, 0.2, 0.2))
    cfg = DAERunConfig(preset="tiny", model={"image_size": 32}, objective=ObjectiveConfig(name="two-phase"),
                       train=TrainConfig(steps=steps, batch_size=16, lr=5e-4, warmup_steps=min(50, steps // 4),
                                         checkpoint_every=max(steps // 4, 1), log_every=10, seed=seed,
                                         progress=False),
                       latent=LatentTrainConfig(steps=0))
    train_dae(cfg, out / "run", open_images(phantom / "images", size=32))
    return out / "run", phantom


def main() -> None:
    import numpy as np
    import torch

    from _common import device_info, emit
    from latentmed.dae import encode_dataset, load_dae
    from latentmed.data import open_images
    from latentmed.io import write_json
    from latentmed.latent import fit_grader, save_latents
    from latentmed.latent.counterfactual import make_counterfactuals
    from latentmed.metrics.image import psnr, ssim

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the run (when trained here), table and plot")
    ap.add_argument("--run", default="", help="a trained DAE run folder (default: train one into OUT/run)")
    ap.add_argument("--data", default="", help="the run's phantom folder (images/ and labels.csv)")
    ap.add_argument("--train-steps", type=int, default=600)
    ap.add_argument("--n-images", type=int, default=400)
    ap.add_argument("--n-eval", type=int, default=24, help="held-out images inverted and decoded per grid")
    ap.add_argument("--grids", default=",".join(f"{i}+{d}" if i != d else str(d) for i, d in GRIDS),
                    help="comma-separated N (same grid both ways) or INV+DEC")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    run, phantom = (Path(args.run), Path(args.data)) if args.run else _train(out, args.train_steps, args.n_images,
                                                                            args.seed)
    train_s = round(time.perf_counter() - t0, 1)
    dae = load_dae(run)
    dataset = open_images(phantom / "images", size=dae.config.image_size)
    enc = encode_dataset(dae, dataset, progress=False)
    latents = save_latents(out / "latents.npz", enc["ids"], enc["z_sem"].numpy(), None, dae.model_id)
    grader = fit_grader(latents, phantom / "labels.csv", "genant", negative=[0], positive=[2, 3], classifier="svm",
                        calibration="means:0,3", holdout=0.3, seed=args.seed)
    ids = list(grader.metadata_["holdout_ids"])[:args.n_eval]
    x = torch.stack([dataset[dataset.ids.index(i)]["image"] for i in ids])

    grids = [tuple(int(v) for v in g.split("+")) if "+" in g else (int(g), int(g)) for g in args.grids.split(",")]
    rows = []
    for inv, dec in grids:
        t1 = time.perf_counter()
        cf = make_counterfactuals(dae, x, ids, grader, GRADES, steps=dec, inversion_steps=inv)
        rec = torch.as_tensor(cf.reconstructions)
        rows.append({"grid": f"{inv}+{dec}", "inversion_steps": inv, "decode_steps": dec, "calls": inv + dec,
                     "psnr_db": round(psnr(x, rec.clamp(-1, 1)).mean().item(), 3),
                     "ssim": round(ssim(x, rec.clamp(-1, 1)).mean().item(), 4),
                     "follow_slope": round(float(np.nanmean(cf.follow_slope())), 4),
                     "seconds": round(time.perf_counter() - t1, 1)})
        print(f"# {rows[-1]}", file=sys.stderr, flush=True)
    ref = next((r for r in rows if (r["inversion_steps"], r["decode_steps"]) == REFERENCE), None)
    for r in rows:
        r["psnr_gap_to_350_calls_db"] = None if ref is None else round(r["psnr_db"] - ref["psnr_db"], 3)
    within = [r for r in rows if ref is not None and r["psnr_gap_to_350_calls_db"] >= -0.5]
    best = min(within, key=lambda r: r["calls"]) if within else None
    result = {"benchmark": "nfe_curve", "run": str(run), "train_s": train_s, "n_eval": len(ids),
              "grades": list(GRADES), "grader_holdout_n": len(grader.metadata_["holdout_ids"]),
              "rows": rows, "fewest_calls_within_0.5db_of_350": best and best["grid"],
              "plot": str(out / "nfe_curve.png"), **device_info()}
    write_json(out / "nfe_curve.json", result)
    _plot(rows, ref, out / "nfe_curve.png")
    emit(result)


def _plot(rows: list[dict], ref: dict | None, path: Path) -> None:
    from latentmed.viz import pyplot, save_figure

    fig, axes = pyplot().subplots(1, 3, figsize=(12, 3.4))
    for ax, key, label in zip(axes, ("psnr_db", "ssim", "follow_slope"), ("PSNR (dB)", "SSIM", "follow slope")):
        same = [r for r in rows if r["inversion_steps"] == r["decode_steps"]]
        ax.plot([r["calls"] for r in same], [r[key] for r in same], "o-", label="N inversion + N decoding")
        if ref is not None:
            ax.axhline(ref[key], color="k", ls="--", lw=1, label="250 + 100 (350 calls)")
            if key == "psnr_db":
                ax.axhline(ref[key] - 0.5, color="grey", ls=":", lw=1, label="-0.5 dB")
        ax.axvline(44, color="r", ls=":", lw=1, label="44 calls (1/8)")
        ax.set_xscale("log")
        ax.set_xlabel("network calls per counterfactual")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


if __name__ == "__main__":
    main()
