"""Why do the demo's samples look broken? Candidate causes measured on a trained demo run (issue 18).

Takes a finished ``latentmed demo`` folder (``run/`` with the DAE and its latent DDIM,
``latents.npz``, ``phantom/``, ``grader/``), draws a fresh held-out phantom set (another seed,
same grade mix) and measures, for each candidate cause:

* ``latent`` table (no decoding, cheap): latent DDIM variants (training steps, width, schedule /
  prediction, sampler steps) against held-out latents: precision/recall and FID in z_sem,
  how far samples sit from the data (norm of the normalised z_sem, nearest-training-latent
  ratio), and the normalised samples' per-dimension mean/std (normalisation check);
* ``images`` table: the rows of :func:`latentmed.evaluation.evaluate_generation` (ceiling,
  held-out z_sem with random x_T, demo latent DDIM, Gaussian, floor) plus the chosen variants
  and decoder settings (steps, x0 clipping); sample grids in ``OUT/grids``.

    OMP_NUM_THREADS=1 python experiments/latent_ddim_samples.py --demo runs/demo --out runs/exp18

Latent DDIM variants train into ``OUT/latent/<name>`` and are reused when present.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

VARIANTS = {  # name -> LatentTrainConfig overrides on top of the demo's (eps, linear, 1000 steps, lr 1e-3, 256x3)
    "demo-1k": {},
    "v-1k": {"prediction": "v"},
    "x-1k": {"prediction": "x"},
    "v-cosine-1k": {"prediction": "v", "schedule": "cosine"},
    "eps-5k": {"steps": 5000},
    "v-5k": {"steps": 5000, "prediction": "v"},
    "eps-5k-wide": {"steps": 5000, "hidden": 1024},
}


def latent_rows(ddims: dict, z_train, z_ref, z_ceil, n: int, steps_list, seed: int) -> list[dict]:
    from latentmed.metrics import frechet_feature_distance, memorisation, precision_recall

    rows = []
    mu, sd = z_train.mean(0), z_train.std(0)

    def stats(name, z, sampler_steps=None, seconds=None):
        pr = precision_recall(z_ref, z)
        zn, hn = (z - mu) / sd, (z_ref - mu) / sd
        mem = memorisation(z, z_ref, z_train)
        rows.append({"sampler": name, "steps": sampler_steps, "P_z": pr["precision"], "R_z": pr["recall"],
                     "fid_z": frechet_feature_distance(z_ref, z),
                     "norm_ratio": float(zn.norm(dim=1).median() / hn.norm(dim=1).median()),
                     "max_abs_zn": float(zn.abs().max()), "zn_mean_abs": float(zn.mean(0).abs().mean()),
                     "zn_std_mean": float(zn.std(0).mean()), "nn_ratio_z": mem["nn_ratio"],
                     "copy_z": mem["copy_fraction"], "far_z": mem["far_fraction"], "seconds": seconds})

    stats("held-out z_sem (ceiling)", z_ceil)
    from latentmed.evaluation.generation import gaussian_latents

    stats("Gaussian N(mean, cov)", gaussian_latents(z_train, n, torch.Generator().manual_seed(seed)))
    stats("random N(0, I) (floor)", torch.randn(n, z_train.shape[1], generator=torch.Generator().manual_seed(seed)))
    for name, ddim in ddims.items():
        for s in steps_list:
            t0 = time.perf_counter()
            z = ddim.sample(n, steps=s, generator=torch.Generator().manual_seed(seed))
            stats(name, z, s, round(time.perf_counter() - t0, 2))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", required=True, help="finished `latentmed demo` folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=128, help="samples per row (held-out set: 2n images)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="latent DDIM variants to train and measure")
    ap.add_argument("--latent-steps", default="10,30,100", help="latent sampler DDIM steps to compare")
    ap.add_argument("--images", default="", help="variants to decode as image rows, e.g. steps-5k[@100]")
    ap.add_argument("--decode-steps", type=int, default=30)
    ap.add_argument("--decoder-checks", action="store_true", help="also decode the demo sampler with 100 "
                    "decoder steps and without x0 clipping")
    args = ap.parse_args()

    from latentmed.config import load_run_config
    from latentmed.dae import load_dae, load_latent_ddim
    from latentmed.dae.training import train_latent_ddim
    from latentmed.data import open_images
    from latentmed.data.phantoms.spine2d import generate_spine2d
    from latentmed.evaluation import (GenerationSettings, evaluate_generation, grade2_fraction, markdown_table,
                                      write_report)
    from latentmed.evaluation.generation import COLUMNS, NOTES
    from latentmed.latent.io import load_grader, load_latents
    from latentmed.viz import save_image_grid

    demo, out = Path(args.demo), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dae = load_dae(demo / "run")
    size = dae.config.image_size
    held_dir = out / "heldout"
    if not (held_dir / "labels.csv").is_file():
        generate_spine2d(held_dir, n=2 * args.n, size=size, seed=args.seed + 1000, grade_weights=(0.4, 0.2, 0.2, 0.2))
    held = open_images(held_dir / "images", size=size, labels=held_dir / "labels.csv")
    train_ds = open_images(demo / "phantom" / "images", size=size)
    z_train = torch.as_tensor(load_latents(demo / "latents.npz").z_sem).float()
    x_held = torch.stack([held[i]["image"] for i in range(len(held))])
    with torch.no_grad():
        z_held = dae.encode(x_held)
    z_ref, z_ceil = z_held[: args.n], z_held[args.n:]

    cfg = load_run_config(demo / "run")
    ddims = {}
    for name in [v for v in args.variants.split(",") if v]:
        folder = out / "latent" / name
        if name == "demo-1k":
            ddims[name] = load_latent_ddim(demo / "run")
            continue
        if not (folder / "model" / "config.json").is_file():
            t0 = time.perf_counter()
            lcfg = dataclasses.replace(cfg.latent, **VARIANTS[name])
            run_cfg = dataclasses.replace(cfg, latent=lcfg, train=dataclasses.replace(cfg.train, progress=False))
            torch.manual_seed(args.seed)
            train_latent_ddim(dae, None, run_cfg, folder, z=z_train)
            print(json.dumps({"trained": name, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
        from latentmed.dae import LatentDDIM

        ddims[name] = LatentDDIM.from_pretrained(folder / "model").eval()
    steps_list = [int(s) for s in args.latent_steps.split(",") if s]
    rows = latent_rows(ddims, z_train, z_ref, z_ceil, args.n, steps_list, args.seed)
    write_report(out, "latent", "Latent DDIM variants against held-out latents (no decoding)", rows,
                 meta={"demo": str(demo), "n": args.n, "n_train": len(z_train), "k": 3},
                 notes=["norm_ratio: median norm of normalised samples over that of held-out latents (1: same "
                        "spread); zn_mean_abs / zn_std_mean: per-dimension mean |mean| and mean std of the "
                        "normalised samples (0 and about 1 when the normalisation is consistent); nn_ratio_z, "
                        "copy_z, far_z: nearest-training-latent distances as in memorisation()."])
    print(markdown_table(rows), flush=True)

    if not args.images and not args.decoder_checks:
        return
    grader = load_grader(demo / "grader")
    truth = held.labels["genant"].to_numpy(dtype=float)
    extra = {}
    for spec in [v for v in args.images.split(",") if v]:
        name, _, s = spec.partition("@")
        extra[f"{name} @{s or 30}"] = ddims[name].sample(args.n, steps=int(s or 30),
                                                         generator=torch.Generator().manual_seed(args.seed + 1))
    t0 = time.perf_counter()
    settings = GenerationSettings(n=args.n, steps=args.decode_steps, latent_steps=30, seed=args.seed)
    res = evaluate_generation(dae, ddims["demo-1k"], held, train_ds, settings, grader=grader, latents=extra,
                              progress=False)
    res.meta["data G2+ (labels)"] = grade2_fraction(truth)
    records = res.records()
    if args.decoder_checks:
        z_demo = ddims["demo-1k"].sample(args.n, steps=30, generator=torch.Generator().manual_seed(args.seed + 1))
        only = dataclasses.replace(settings, sources=())
        r100 = evaluate_generation(dae, None, held, train_ds, dataclasses.replace(only, steps=100), grader=grader,
                                   latents={"demo-1k @30, decoder 100 steps": z_demo}, progress=False)
        dae.config.clip_x0 = False
        rnc = evaluate_generation(dae, None, held, train_ds, only, grader=grader,
                                  latents={"demo-1k @30, no x0 clipping": z_demo}, progress=False)
        dae.config.clip_x0 = True
        records += r100.records() + rnc.records()
        res.images.update({**r100.images, **rnc.images})
    for name, x in res.images.items():
        save_image_grid(x[:16], out / "grids" / f"{name.replace(' ', '_').replace('/', '-')}.png", nrow=16)
    meta = {**res.meta, "decode seconds (all rows)": round(time.perf_counter() - t0, 1)}
    write_report(out, "images", "Samples against held-out images: references, demo sampler, variants", records,
                 columns=COLUMNS, meta=meta, notes=NOTES)
    print(markdown_table(records, COLUMNS), flush=True)


if __name__ == "__main__":
    main()
