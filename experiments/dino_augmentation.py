"""DiNO-Diffusion on the chest2d phantom, end to end on CPU (tiny models).

phantoms -> VAE -> token cache -> conditioned UNet (with reconstruction-FID selection) ->
reconstruction / interpolation grids -> augmentation table (k-fold, >= 2 regimes x >= 2 ratios)
-> memorisation check. Every stage is also a CLI command (see the module's ``--help``).

    OMP_NUM_THREADS=1 python experiments/dino_augmentation.py --out runs/dino_aug  # ~35 min on a loaded 2-core CPU
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/dino_aug"))
    p.add_argument("--n-train", type=int, default=600)
    p.add_argument("--n-test", type=int, default=300)
    p.add_argument("--phantom-size", type=int, default=64)
    p.add_argument("--size", type=int, default=32, help="model image size (phantoms are resized)")
    p.add_argument("--vae-channels", default="16,32,32")
    p.add_argument("--unet-channels", default="32,64")
    p.add_argument("--vae-steps", type=int, default=600)
    p.add_argument("--ldm-steps", type=int, default=800)
    p.add_argument("--conditioner", default="tiny", help="local ViT folder, or tiny / tiny-vit")
    p.add_argument("--subsets", default="50,200")
    p.add_argument("--ratios", default="1,5")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--strategy", default="reconstruction")
    p.add_argument("--sample-steps", type=int, default=20)
    p.add_argument("--stage", default="all", help="all | data | vae | ldm | grids | eval")
    a = p.parse_args(argv)

    import torch

    from latentmed.data.phantoms.chest2d import LABELS, generate_chest2d
    from latentmed.ldm import load_conditioner, load_ldm
    from latentmed.ldm.augment import augment_eval
    from latentmed.ldm.data import LDMImageDataset
    from latentmed.ldm.training import (LDMTrainSpec, VAETrainSpec, embed_dataset, save_embeddings, train_ldm,
                                        train_vae)
    from latentmed.train import TrainConfig
    from latentmed.viz.ldm import interpolation_grid, reconstruction_grid

    out = a.out
    train_dir, test_dir = out / "data" / "train", out / "data" / "test"
    stages = {"data", "vae", "ldm", "grids", "eval"} if a.stage == "all" else {a.stage}
    times = {}
    t0 = time.time()
    if "data" in stages:
        generate_chest2d(train_dir, a.n_train, a.phantom_size, seed=0)
        generate_chest2d(test_dir, a.n_test, a.phantom_size, seed=1)
        times["data"] = time.time() - t0
    if "vae" in stages:
        t = time.time()
        train_vae(train_dir, out / "vae_run", VAETrainSpec(
            image_size=a.size, block_out_channels=tuple(int(c) for c in a.vae_channels.split(",")), kl_weight=1e-6,
            train=TrainConfig(steps=a.vae_steps, batch_size=16, lr=1e-3, ema_decay=0.99, checkpoint_every=200,
                              log_every=50)))
        times["vae"] = time.time() - t
    if "ldm" in stages:
        t = time.time()
        cond = load_conditioner(a.conditioner)
        ds = LDMImageDataset(train_dir, size=a.size)
        save_embeddings(out / "embeddings.safetensors", embed_dataset(cond, ds), cond, ds.keys)
        train_ldm(train_dir, out / "vae_run", cond, out / "ldm", LDMTrainSpec(
            image_size=a.size, block_out_channels=tuple(int(c) for c in a.unet_channels.split(",")), fid_every=max(1, a.ldm_steps // 3), fid_images=64,
            fid_steps=10, train=TrainConfig(steps=a.ldm_steps, batch_size=32, lr=5e-4, ema_decay=0.995,
                                            warmup_steps=50, checkpoint_every=500, log_every=50)),
            embeddings=out / "embeddings.safetensors", heldout=test_dir)
        times["ldm"] = time.time() - t
    if "grids" in stages:
        t = time.time()
        ldm = load_ldm(out / "ldm")
        x = LDMImageDataset(test_dir, size=a.size).stack(range(12))
        reconstruction_grid(ldm, x[:6], out / "grids" / "reconstruction.png", variations=4, steps=a.sample_steps)
        interpolation_grid(ldm, x[6:9], x[9:12], out / "grids" / "interpolation.png", steps=a.sample_steps)
        times["grids"] = time.time() - t
    if "eval" in stages:
        t = time.time()
        summary = augment_eval(load_ldm(out / "ldm"), train_dir, test_dir, LABELS, out / "report",
                               subsets=[int(s) for s in a.subsets.split(",")],
                               ratios=[int(r) for r in a.ratios.split(",")], folds=a.folds, strategy=a.strategy,
                               steps=a.sample_steps)
        times["eval"] = time.time() - t
        print((out / "report" / "table.md").read_text())
        print(json.dumps(summary["memorisation"], indent=1))
    print("seconds:", {k: round(v, 1) for k, v in times.items()}, "threads:", torch.get_num_threads())


if __name__ == "__main__":
    main()
