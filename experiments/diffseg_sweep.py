"""DiffSeg on the chest2d phantom: Dice per structure vs merge threshold and timestep, and a KMeans baseline.

Reproduces the shape of DiNO-Diffusion's Table 2 and Figs 11-12 on the project's phantom:

    python experiments/diffseg_sweep.py --run RUN --out results/diffseg            # a trained run
    python experiments/diffseg_sweep.py --out results/diffseg --train-steps 1500   # train a tiny one first
    python experiments/diffseg_sweep.py --run RUN --out results/diffseg --k 4 --no-sweep  # fair table only

Without ``--run`` a tiny VAE + conditional UNet (conditioned on PCA tokens fitted on the
training pool, or with ``--conditioner tiny`` on a small RANDOM ViT's global tokens) is trained with the
library's DiNO-Diffusion functions (:func:`latentmed.ldm.training.train_vae`,
:func:`~latentmed.ldm.training.train_ldm`).
Evaluation images are a separate phantom draw (another seed) from the training images.

``--k K`` (default 4) also writes the fair table (``fixed_k/table.md``): DiffSeg at exactly K
segments with one-to-one matching against KMeans on intensity, KMeans on intensity + x, y, the
image-blind grid, the empty-context ("vanilla") row and DiffSeg on an untrained UNet
(:func:`latentmed.segment.run.score_fixed_k`). The UNet's heads have 32 channels (``head_channels``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--run", type=Path, default=None, help="trained DiNO-Diffusion run (else train a tiny one)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--n-train", type=int, default=2000, help="unlabelled training pool (seed 10)")
    p.add_argument("--variant", default="varied", help="chest2d variant for training and evaluation draws")
    p.add_argument("--conditioner", default="pca", help="pca (fitted on the training pool) or tiny (a RANDOM ViT)")
    p.add_argument("--n-eval", type=int, default=32)
    p.add_argument("--vae-steps", type=int, default=400)
    p.add_argument("--train-steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--vae-channels", default="16,32,32")
    p.add_argument("--unet-channels", default="32,64")
    p.add_argument("--timesteps", default="50,100,200,300,400,500,700,900")
    p.add_argument("--thresholds", default="0.005,0.01,0.02,0.05,0.1,0.2,0.5,1.0")
    p.add_argument("--timestep", type=int, default=300)
    p.add_argument("--threshold", type=float, default=0.05)
    p.add_argument("--grid", type=int, default=16)
    p.add_argument("--refine", action="store_true")
    p.add_argument("--merge", default="reference", choices=("reference", "greedy"),
                   help="later merge iterations: google/diffseg's inclusive rule or the greedy partition (before issue 28)")
    p.add_argument("--k", type=int, default=4, help="segments for the fixed-K one-to-one table (0: skip)")
    p.add_argument("--threshold-quantile", type=float, default=None,
                   help="per-image threshold = this quantile of the anchors' pairwise KL (bin-count free)")
    p.add_argument("--no-sweep", action="store_true", help="only the fixed-K table")
    p.add_argument("--train-data", type=Path, default=None,
                   help="train the tiny model on this folder (e.g. an unlabelled pool) instead of a fresh draw")
    args = p.parse_args(argv)

    from latentmed.data.phantoms.chest2d import generate_chest2d
    from latentmed.segment.diffseg import DiffSegConfig
    from latentmed.segment.load import load_segmenter
    from latentmed.segment.report import write_fixed_k, write_sweep
    from latentmed.segment.run import SweepSettings, score_fixed_k, sweep

    out = args.out
    eval_dir = out / "chest2d_eval"
    if not (eval_dir / "labels.csv").is_file():
        generate_chest2d(eval_dir, args.n_eval, args.size, seed=12345, variant=args.variant)
    run = args.run
    if run is None:
        run = out / "run"
        if not (run / "ldm.json").is_file():
            run = train_tiny(out, args)
    cfg = DiffSegConfig(timestep=args.timestep, threshold=args.threshold, grid=args.grid, refine=args.refine,
                        merge=args.merge,
                        threshold_quantile=args.threshold_quantile)
    if not args.no_sweep:
        t0 = time.time()
        result = sweep(load_segmenter(run, cfg), eval_dir, eval_dir,
                       SweepSettings(timesteps=[int(t) for t in args.timesteps.split(",")],
                                     thresholds=[float(t) for t in args.thresholds.split(",")]))
        write_sweep(result, out / "sweep")
        print((out / "sweep" / "table.md").read_text())
        bt, bh = result.best
        print(f"best: t={result.timesteps[bt]} tau={result.thresholds[bh]}; sweep took {time.time() - t0:.0f}s")
    if args.k:
        t0 = time.time()
        write_fixed_k(score_fixed_k(load_segmenter(run, cfg), eval_dir, eval_dir, k=args.k), out / "fixed_k")
        print((out / "fixed_k" / "table.md").read_text())
        print(f"fixed-K table took {time.time() - t0:.0f}s")


def train_tiny(out: Path, args) -> Path:
    """Train a tiny VAE and conditional UNet on a chest2d training draw with the library's LDM training functions."""
    from latentmed.data.phantoms.chest2d import generate_chest2d
    from latentmed.ldm.conditioner import DinoConditioner
    from latentmed.ldm.training import (LDMDataConfig, LDMRunConfig, LDMTrainConfig, LDMUNetConfig, VAEModelConfig,
                                        VAERunConfig, VAETrainConfig, train_ldm, train_vae)

    train_dir = args.train_data or out / "chest2d_train"
    if args.train_data is None and not (train_dir / "labels.csv").is_file():
        generate_chest2d(train_dir, args.n_train, args.size, seed=10, variant=args.variant)
    if not (out / "vae" / "vae" / "config.json").is_file():
        t0 = time.time()
        train_vae(VAERunConfig(
            model=VAEModelConfig(block_out_channels=tuple(int(c) for c in args.vae_channels.split(","))),
            train=VAETrainConfig(steps=args.vae_steps, batch_size=args.batch_size, lr=1e-3, ema_decay=0.99,
                                 checkpoint_every=max(1, args.vae_steps // 2)),
            data=LDMDataConfig(path=str(train_dir), size=args.size)), out / "vae")
        print(f"VAE: {args.vae_steps} steps in {time.time() - t0:.0f}s")
    if args.conditioner == "pca":
        from latentmed.ldm.conditioner import PCAConditioner
        from latentmed.ldm.data import open_ldm_images

        conditioner = PCAConditioner.fit(open_ldm_images(train_dir, size=args.size).stack(), width=64, image_size=32)
    else:
        conditioner = DinoConditioner.tiny(image_size=32, hidden_size=64, layers=2)  # random ViT, labelled as such
    t0 = time.time()
    train_ldm(LDMRunConfig(
        model=LDMUNetConfig(block_out_channels=tuple(int(c) for c in args.unet_channels.split(","))),
        train=LDMTrainConfig(steps=args.train_steps, batch_size=args.batch_size, lr=2e-4, ema_decay=0.995,
                             checkpoint_every=max(1, args.train_steps // 3)),
        data=LDMDataConfig(path=str(train_dir), size=args.size)), out / "run", vae=out / "vae" / "vae",
        conditioner=conditioner)
    print(f"UNet: {args.train_steps} steps in {time.time() - t0:.0f}s")
    return out / "run"


if __name__ == "__main__":
    main()
