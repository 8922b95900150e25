"""The shape test bed's two targets, without training: constant-mask floor and thick-slice input (issue 15).

Prints JSON. Floor: the voxel-wise majority of ``--n-train`` spine3d training masks (seed 1),
scored against ``--n-test`` held-out masks (seed 2, other individuals). Input: the held-out
masks degraded by :func:`simulate_thick_slices` (defaults: 6 mm sagittal slabs, partial volume
0.75, or the values given), scored against the clean masks, overall and on the posterior
elements (:func:`posterior_region`). Targets at 64^3: floor <= 0.75; input Dice 0.72-0.80,
precision ~0.97, recall 0.6-0.75; and floor + 0.1 < input.

    OMP_NUM_THREADS=1 python experiments/shape_testbed.py --size 64 --n-train 200 --n-test 50
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=50)
    ap.add_argument("--thickness", type=int, default=6)
    ap.add_argument("--axis", type=int, default=2)
    ap.add_argument("--partial-volume", type=float, default=0.75)
    ap.add_argument("--blobs", type=int, default=0)
    args = ap.parse_args()

    from latentmed.data.phantoms.spine3d import spine3d_cases
    from latentmed.shape.evaluate import constant_mask, posterior_region, score_cases
    from latentmed.shape.volumes import simulate_thick_slices

    train = np.stack([labels > 0 for _, labels, _ in spine3d_cases(args.n_train, args.size, seed=1)])
    parts = np.stack([labels for _, labels, _ in spine3d_cases(args.n_test, args.size, seed=2)])
    truth = parts > 0
    coarse = np.stack([simulate_thick_slices(t, args.thickness, args.axis, threshold=args.partial_volume,
                                             blobs=args.blobs, seed=i) for i, t in enumerate(truth)])
    floor = np.broadcast_to(constant_mask(train), truth.shape)
    region = posterior_region(parts)
    keys = ("dice", "precision", "sensitivity", "hausdorff95")  # HD95: median (inf where a prediction is empty)
    out = {"args": vars(args)}
    for name, pred in (("floor", floor), ("input", coarse)):
        for scope, reg in (("overall", None), ("posterior", region)):
            s = score_cases(truth, pred, reg)
            out[f"{name}_{scope}"] = {k: [round(float(np.mean(s[k])), 4), round(float(np.std(s[k])), 4)]
                                      for k in keys[:-1]}
            out[f"{name}_{scope}"]["hausdorff95_median"] = round(float(np.median(s["hausdorff95"])), 4)
    f, i = out["floor_overall"]["dice"][0], out["input_overall"]["dice"][0]
    out["targets"] = {"floor<=0.75": f <= 0.75, "input_dice_0.72-0.80": 0.72 <= i <= 0.80,
                      "floor+0.1<input": f + 0.1 < i}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
