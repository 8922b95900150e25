"""Null row of the shape experiment: an UNTRAINED VAE (random init, seeds 0..2) refining the coarse test
inputs of a ``shape_experiment.py`` output folder. Prints JSON (overall and posterior Dice, mean ± sd over seeds).

    OMP_NUM_THREADS=1 python experiments/shape_null.py --out runs/shape_exp64 --size 64
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/shape_exp64"))
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seeds", type=str, default="0,1,2")
    args = ap.parse_args()

    from latentmed.runtime import seed_everything
    from latentmed.shape.evaluate import load_pairs, load_part_cubes, posterior_region, refine_cubes, score_cases
    from latentmed.shape.models import ShapeVAE, VAEConfig

    names, coarse, truth = load_pairs(args.out / "data/coarse", args.out / "data/test", args.size)
    region = posterior_region(load_part_cubes(args.out / "data/test", names, args.size))
    per_seed = {"overall": [], "posterior": []}
    for seed in [int(s) for s in args.seeds.split(",")]:
        seed_everything(seed)  # as a training run initialises its model
        model = ShapeVAE(VAEConfig(image_size=args.size)).eval()
        pred, _ = refine_cubes(model, coarse, batch_size=5, seed=seed)
        per_seed["overall"].append(float(score_cases(truth, pred)["dice"].mean()))
        per_seed["posterior"].append(float(score_cases(truth, pred, region)["dice"].mean()))
    print(json.dumps({k: [round(float(np.mean(v)), 4), round(float(np.std(v)), 4)] for k, v in per_seed.items()}))


if __name__ == "__main__":
    main()
