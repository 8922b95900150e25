"""Levers of the demo's counterfactuals: train a DAE on the spine phantom, grade, move z_sem four ways.

One run = phantom -> two-phase DAE (no latent DDIM) -> z_sem -> SVM grader (G0 vs G2/G3, 30% held
out) -> held-out AUC -> counterfactual strips of held-out G0 and G3 vertebrae at grades -1..4 along
each move direction (normal, normal-std, means, pattern). Prints one JSON line and writes
``OUT/result.json``: training wall time, held-out AUC, per direction the mean follow slope and the
mean centre change (largest |counterfactual - reconstruction| in the central half).

    OMP_NUM_THREADS=1 python experiments/counterfactual_levers.py --out runs/levers/base
    OMP_NUM_THREADS=1 python experiments/counterfactual_levers.py --lr 1e-3 --out runs/levers/lr1e-3

Interrupted runs resume (the DAE from its checkpoint); a finished run only prints its result.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def run(args) -> dict:
    import torch

    from latentmed.dae import DAERunConfig, LatentTrainConfig, ObjectiveConfig, encode_dataset, train_dae
    from latentmed.data import open_images
    from latentmed.data.phantoms.spine2d import generate_spine2d
    from latentmed.latent import evaluate_grader, fit_grader, save_latents
    from latentmed.latent.counterfactual import DIRECTIONS, load_images, make_counterfactuals, move_direction
    from latentmed.train import TrainConfig

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    phantom = out / "phantom"
    if not (phantom / "labels.csv").is_file():
        generate_spine2d(phantom, n=args.n_images, size=args.size, seed=args.seed,
                         grade_weights=(0.4, 0.2, 0.2, 0.2))
    dataset = open_images(phantom / "images", size=args.size)
    model = {"image_size": args.size}
    if args.width:
        model["model_channels"] = args.width
    if args.enc_middle:
        model["enc_middle"] = True
    cfg = DAERunConfig(
        preset="tiny", model=model, objective=ObjectiveConfig(name="two-phase", phase1_fraction=args.phase1),
        train=TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, ema_decay=args.ema,
                          warmup_steps=min(50, args.steps // 4), checkpoint_every=max(args.steps // 5, 1),
                          log_every=50, seed=args.seed, progress=False),
        latent=LatentTrainConfig(steps=0))
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    dae = train_dae(cfg, out / "run", dataset)
    train_s = time.perf_counter() - t0
    latents = out / "latents.npz"
    if not latents.is_file():
        enc = encode_dataset(dae, dataset, progress=False)
        save_latents(latents, enc["ids"], enc["z_sem"].numpy(), None, dae.model_id)
    labels = phantom / "labels.csv"
    grader = fit_grader(latents, labels, "genant", negative=[0], positive=[2, 3], classifier="svm",
                        calibration="means:0,3", holdout=0.3, seed=args.seed)
    table = evaluate_grader(grader, latents, labels, tsne=False, seed=args.seed)
    import pandas as pd

    grade_of = dict(zip(*pd.read_csv(labels)[["id", "genant"]].astype(str).values.T))
    held = grader.metadata_["holdout_ids"]
    picks = [i for i in held if grade_of[i] == "0"][:args.n_cf // 2] + [i for i in held if grade_of[i] == "3"][:args.n_cf // 2]
    x = load_images(phantom, picks, size=args.size)
    result = {"settings": vars(args), "train_s": round(train_s, 1), "auc": round(table["rows"][0]["detection_auc"], 4),
              "ids": picks, "directions": {}}
    for d in DIRECTIONS:
        u = move_direction(grader, d)
        cos = 1.0 if u is None else float(grader.normal_ @ u / np.linalg.norm(u))
        t1 = time.perf_counter()
        cf = make_counterfactuals(dae, x, picks, grader, [-1, 0, 1, 2, 3, 4], steps=args.decode_steps,
                                  direction=d, out_dir=out / f"cf_{d}")
        slope, change = cf.follow_slope(), cf.centre_change()
        result["directions"][d] = {"cosine_with_normal": round(cos, 4), "follow_slope": round(float(np.mean(slope)), 4),
                                   "follow_slope_each": [round(float(v), 3) for v in slope],
                                   "centre_change": round(float(np.mean(change)), 4),
                                   "centre_change_each": [round(float(v), 3) for v in change],
                                   "cf_s": round(time.perf_counter() - t1, 1)}
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--n-images", type=int, default=600)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--ema", type=float, default=0.9999)
    p.add_argument("--phase1", type=float, default=0.25)
    p.add_argument("--width", type=int, default=0, help="model_channels (0: the tiny preset's 32)")
    p.add_argument("--enc-middle", action="store_true", help="DiffAE's encoder middle block")
    p.add_argument("--decode-steps", type=int, default=30)
    p.add_argument("--n-cf", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    path = Path(args.out) / "result.json"
    if path.is_file():
        print(path.read_text().strip())
        return
    result = run(args)
    path.write_text(json.dumps(result) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
