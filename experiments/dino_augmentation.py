"""DiNO-Diffusion on the chest2d phantom, end to end on CPU (tiny models), in the paper's data regime.

The paper's diffusion model saw 868k unlabelled images disjoint from the classifier's data. Here
(issue 16), four disjoint phantom draws (own seeds, ``--variant`` ``varied`` by default):

- ``data/unlabelled`` (``--n-unlabelled``, seed 10): trains the VAE, fits the conditioner
  (PCA tokens, or the pool standardisation of a ViT's tokens) and trains the diffusion model;
- ``data/unlabelled_val`` (``--n-val``, seed 11): the pool's validation split, used only for
  reconstruction-FID checkpoint selection;
- ``data/labelled`` (``--n-labelled``, seed 1): the classifier's pool, from which the nested
  label-balanced subsets are drawn;
- ``data/test`` (``--n-test``, seed 2): final numbers only (``augment_eval`` refuses a run whose
  training or selection used it).

phantoms -> conditioner -> VAE -> token cache -> conditioned UNet (FID selection on the pool's
validation split) -> reconstruction / interpolation grids -> augmentation table -> memorisation.
Stages are resumable (``--stage data|conditioner|vae|ldm|grids|eval``).

    OMP_NUM_THREADS=1 python experiments/dino_augmentation.py --out runs/dino_aug --conditioner pca
    OMP_NUM_THREADS=1 python experiments/dino_augmentation.py --out runs/dino_aug_vit --conditioner tiny  # random ViT
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/dino_aug"))
    p.add_argument("--n-unlabelled", type=int, default=4000)
    p.add_argument("--n-val", type=int, default=200)
    p.add_argument("--n-labelled", type=int, default=600)
    p.add_argument("--n-test", type=int, default=300)
    p.add_argument("--variant", default="varied", help="chest2d variant (classic: no headroom, see chest2d_headroom.py)")
    p.add_argument("--phantom-size", type=int, default=64)
    p.add_argument("--size", type=int, default=32, help="model image size (phantoms are resized)")
    p.add_argument("--vae-channels", default="16,32,32")
    p.add_argument("--unet-channels", default="32,64")
    p.add_argument("--vae-steps", type=int, default=600)
    p.add_argument("--ldm-steps", type=int, default=800)
    p.add_argument("--conditioner", default="pca",
                   help="pca (fitted on the unlabelled pool), a local ViT folder, or tiny / tiny-vit (RANDOM ViTs)")
    p.add_argument("--pca-width", type=int, default=64)
    p.add_argument("--no-standardise", action="store_true", help="keep a ViT's raw tokens (no pool standardisation)")
    p.add_argument("--subsets", default="50,200")
    p.add_argument("--ratios", default="1,5")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--strategy", default="reconstruction")
    p.add_argument("--sample-steps", type=int, default=20)
    p.add_argument("--stage", default="all",
                   help="all (= data conditioner vae ldm grids seeds) | data | conditioner | vae | ldm | grids | eval "
                        "(the older k-fold table) | seeds (issue 16 rows)")
    p.add_argument("--seed-subsets", default="10,20,50", help="issue 16 protocol (stage seeds): real n")
    p.add_argument("--seeds", type=int, default=5, help="issue 16 protocol: subset seeds")
    p.add_argument("--seed-ratio", type=int, default=5, help="issue 16 protocol: extra images per real image")
    a = p.parse_args(argv)

    import torch

    from latentmed.data.phantoms.chest2d import LABELS, generate_chest2d
    from latentmed.ldm import PCAConditioner, load_conditioner, load_ldm
    from latentmed.ldm.augment import augment_eval
    from latentmed.ldm.data import open_ldm_images
    from latentmed.ldm.training import (FIDSelectionConfig, LDMDataConfig, LDMRunConfig, LDMTrainConfig, LDMUNetConfig,
                                        VAEModelConfig, VAEObjectiveConfig, VAERunConfig, VAETrainConfig, embed_dataset,
                                        save_embeddings, train_ldm, train_vae)
    from latentmed.ldm.synthesis import interpolation_grid, reconstruction_grid

    out = a.out
    d = regime_dirs(out)
    stages = {"data", "conditioner", "vae", "ldm", "grids", "seeds"} if a.stage == "all" else {a.stage}
    times = {}
    t0 = time.time()
    if "data" in stages:
        for key, n, seed in (("unlabelled", a.n_unlabelled, 10), ("unlabelled_val", a.n_val, 11),
                             ("labelled", a.n_labelled, 1), ("test", a.n_test, 2)):
            if not (d[key] / "labels.csv").is_file():
                generate_chest2d(d[key], n, a.phantom_size, seed=seed, variant=a.variant)
        times["data"] = time.time() - t0
    if "conditioner" in stages:
        t = time.time()
        pool = open_ldm_images(d["unlabelled"], size=a.size)
        images = pool.stack()
        if a.conditioner == "pca":
            cond = PCAConditioner.fit(images, width=a.pca_width, image_size=min(a.size, 32))
        else:
            cond = load_conditioner(a.conditioner)
            if not a.no_standardise:
                cond.fit_standardisation(images)
        cond.save_pretrained(out / "conditioner")
        times["conditioner"] = time.time() - t
    if "vae" in stages:
        t = time.time()
        train_vae(VAERunConfig(
            model=VAEModelConfig(block_out_channels=tuple(int(c) for c in a.vae_channels.split(","))),
            objective=VAEObjectiveConfig(kl_weight=1e-6),
            train=VAETrainConfig(steps=a.vae_steps, batch_size=16, lr=1e-3, ema_decay=0.99, checkpoint_every=200,
                                 log_every=50),
            data=LDMDataConfig(path=str(d["unlabelled"]), size=a.size)), out / "vae_run")
        times["vae"] = time.time() - t
    if "ldm" in stages:
        t = time.time()
        cond = load_conditioner(out / "conditioner")
        ds = open_ldm_images(d["unlabelled"], size=a.size)
        emb = out / "embeddings.safetensors"
        save_embeddings(emb, embed_dataset(cond, ds), cond, ds.ids)
        train_ldm(LDMRunConfig(
            model=LDMUNetConfig(block_out_channels=tuple(int(c) for c in a.unet_channels.split(","))),
            train=LDMTrainConfig(steps=a.ldm_steps, batch_size=32, lr=5e-4, ema_decay=0.995, warmup_steps=50,
                                 checkpoint_every=500, log_every=50, eval_every=max(1, a.ldm_steps // 3)),
            data=LDMDataConfig(path=str(d["unlabelled"]), size=a.size),
            eval=FIDSelectionConfig(heldout=str(d["unlabelled_val"]), images=64, steps=10)),
            out / "ldm", vae=out / "vae_run", conditioner=cond, embeddings=emb)
        times["ldm"] = time.time() - t
    train_dir, test_dir = d["labelled"], d["test"]
    if "grids" in stages:
        t = time.time()
        ldm = load_ldm(out / "ldm")
        x = open_ldm_images(train_dir, size=a.size).stack(range(12))  # labelled pool: the test set stays unseen
        reconstruction_grid(ldm, x[:6], out / "grids" / "reconstruction.png", variations=4, steps=a.sample_steps)
        interpolation_grid(ldm, x[6:9], x[9:12], out / "grids" / "interpolation.png", steps=a.sample_steps)
        times["grids"] = time.time() - t
    if "eval" in stages:
        t = time.time()
        summary = augment_eval(load_ldm(out / "ldm"), train_dir, test_dir, LABELS, out / "report",
                               subsets=[int(s) for s in a.subsets.split(",")],
                               ratios=[int(r) for r in a.ratios.split(",")], folds=a.folds, strategy=a.strategy,
                               steps=a.sample_steps, progress=print)
        times["eval"] = time.time() - t
        print((out / "report" / "table.md").read_text())
        print(json.dumps(summary["memorisation"], indent=1))
    if "seeds" in stages:
        t = time.time()
        run_seeds(a, out, d)
        times["seeds"] = time.time() - t
    print("seconds:", {k: round(v, 1) for k, v in times.items()}, "threads:", torch.get_num_threads())


def run_seeds(a, out: Path, d: dict[str, Path]) -> dict:
    """Issue 16's augmentation rows over subset seeds: real only; classical augmentation; oracle (fresh
    phantoms with the source's labels, the ceiling); reconstruction and interpolation from the run's
    conditioner; shuffled tokens (the null); the label read-back gate; memorisation against the pool."""
    import numpy as np
    import torch.nn.functional as F

    from chest2d_headroom import render_set
    from latentmed.data.phantoms.chest2d import LABELS
    from latentmed.io import write_json, write_text
    from latentmed.ldm import load_ldm
    from latentmed.ldm.augment import (augment_seeds, check_test_unseen, classical_generator, ldm_generator,
                                       memorisation_check, seeds_table, shuffled_token_generator)
    from latentmed.ldm.data import folder_labels, open_ldm_images

    ldm = load_ldm(out / "ldm")
    check_test_unseen(ldm, d["test"])

    def load(key):
        ds = open_ldm_images(d[key], size=a.size)
        return ds.stack(), folder_labels(d[key], ds.ids, LABELS)

    (x_pool, y_pool), (x_test, y_test) = load("labelled"), load("test")

    def oracle(x, y, n, seed):
        ys = np.asarray(y)[np.arange(n) % len(y)]
        xo, yo = render_set(n, 3, a.variant, a.phantom_size, ys, oracle_key=(seed,))
        return F.interpolate(xo, size=(a.size, a.size), mode="area"), yo

    name = ldm.conditioner.label
    gens = {"classical augmentation": classical_generator(), "oracle (fresh phantoms)": oracle,
            f"reconstruction [{name}]": ldm_generator(ldm, "reconstruction", a.sample_steps),
            f"interpolation [{name}]": ldm_generator(ldm, "interpolation", a.sample_steps),
            f"shuffled tokens (null) [{name}]": shuffled_token_generator(ldm, a.sample_steps)}
    res = augment_seeds(x_pool, y_pool, x_test, y_test, gens, subsets=[int(s) for s in a.seed_subsets.split(",")],
                        seeds=a.seeds, ratio=a.seed_ratio, progress=lambda m: print(m, flush=True))
    syn = res.pop("kept")[f"reconstruction [{name}]"][0]
    pool = open_ldm_images(d["unlabelled"], size=a.size).stack()
    mem = memorisation_check(syn, pool, x_test)
    res["memorisation_vs_unlabelled_pool"] = {k: v for k, v in mem.items() if not isinstance(v, list)}
    res["conditioner"] = name
    write_json(out / "seeds" / "results.json", res)
    write_text(out / "seeds" / "table.md", f"Conditioner: {name}\n\n" + seeds_table(res))
    print((out / "seeds" / "table.md").read_text())
    return res


def regime_dirs(out: Path) -> dict[str, Path]:
    """The four disjoint draws of the data regime (see the module docstring)."""
    return {k: out / "data" / k for k in ("unlabelled", "unlabelled_val", "labelled", "test")}


if __name__ == "__main__":
    main()
