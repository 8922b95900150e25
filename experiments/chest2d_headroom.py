"""Headroom check for the augmentation experiment on ``chest2d`` (issue 16): can extra data help at all?

A classifier (:class:`~latentmed.nn.classifier.SmallCNN` at 32 px, the experiment's recipe) is trained on
``n`` real phantoms (label-balanced subsets of a labelled pool, several subset seeds) and tested on
a held-out test draw, with and without the ORACLE: a perfect generator, i.e. ``ratio`` fresh
phantoms per real image rendered with that image's labels (their own rendered labels are used).
A ``pool`` row (all labelled images) gives the data ceiling. The test bed has headroom when
real-only at n=50 has macro AUC in [0.75, 0.85] and the oracle adds >= 0.1 there.

    OMP_NUM_THREADS=1 python experiments/chest2d_headroom.py --variant varied --out runs/headroom
    OMP_NUM_THREADS=1 python experiments/chest2d_headroom.py --variant classic --out runs/headroom_classic

Prints and writes ``headroom.json`` and ``table.md``. Seeds: labelled pool 1, test 2, oracle 3
(the unlabelled pool of the diffusion experiment uses another seed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def render_set(n: int, seed: int, variant: str, size: int, labels: np.ndarray | None = None, oracle_key=()):
    """``n`` phantoms as ``(images [n, 1, size, size] in [-1, 1], labels [n, 3])``; fixed labels when given."""
    import torch

    from latentmed.data.phantoms.chest2d import LABELS, render_chest2d

    xs, ys = [], []
    for i in range(n):
        fixed = {} if labels is None else dict(zip(LABELS, map(bool, labels[i])))
        s = render_chest2d(size, np.random.default_rng([seed, *oracle_key, i]), variant=variant, **fixed)
        xs.append(s.image)
        ys.append([s.labels[k] for k in LABELS])
    return torch.as_tensor(np.stack(xs))[:, None] * 2 - 1, np.array(ys, dtype=np.int64)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variant", default="varied")
    p.add_argument("--subsets", default="10,20,50")
    p.add_argument("--seeds", type=int, default=3, help="subset seeds (classifier seed follows)")
    p.add_argument("--ratio", type=int, default=5, help="oracle phantoms per real image")
    p.add_argument("--pool", type=int, default=600)
    p.add_argument("--test", type=int, default=300)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--classifier-size", type=int, default=32)
    a = p.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from latentmed.io import write_json, write_text
    from latentmed.ldm.augment import macro_auc, predict, train_classifier
    from latentmed.ldm.synthesis import nested_subsets

    torch.set_num_threads(1)
    t0 = time.time()
    down = lambda x: F.interpolate(x, size=(a.classifier_size,) * 2, mode="area")  # noqa: E731
    x_pool, y_pool = render_set(a.pool, 1, a.variant, a.size)
    x_test, y_test = render_set(a.test, 2, a.variant, a.size)
    x_pool, x_test = down(x_pool), down(x_test)

    def auc(x, y, seed):
        return macro_auc(y_test, predict(train_classifier(x, y, seed=seed), x_test))

    sizes = [int(s) for s in a.subsets.split(",")]
    rows = []
    for n in sizes:
        real, oracle = [], []
        for seed in range(a.seeds):
            idx = nested_subsets(y_pool, [n], seed)[n]
            xr, yr = x_pool[idx], y_pool[idx]
            xo, yo = render_set(n * a.ratio, 3, a.variant, a.size, np.repeat(yr, a.ratio, 0), oracle_key=(n, seed))
            real.append(auc(xr, yr, seed))
            oracle.append(auc(torch.cat([xr, down(xo)]), np.concatenate([yr, yo]), seed))
        rows.append({"n": n, "real": real, "oracle": oracle, "real_mean": float(np.mean(real)),
                     "oracle_mean": float(np.mean(oracle)), "gain": float(np.mean(oracle) - np.mean(real))})
        print(json.dumps({k: v for k, v in rows[-1].items() if k.endswith(("mean", "gain", "n"))}), flush=True)
    pool_auc = auc(x_pool, y_pool, 0)
    at50 = next((r for r in rows if r["n"] == 50), None)
    verdict = None if at50 is None else bool(0.75 <= at50["real_mean"] <= 0.85 and at50["gain"] >= 0.1)
    result = {"variant": a.variant, "rows": rows, "pool_auc": pool_auc, "pool": a.pool, "test": a.test,
              "ratio": a.ratio, "seeds": a.seeds, "test_prevalence": y_test.mean(0).tolist(),
              "headroom_pass": verdict, "seconds": round(time.time() - t0, 1)}
    md = [f"chest2d `{a.variant}`: macro AUC (SmallCNN, {a.classifier_size} px) on {a.test} test phantoms, "
          f"mean ± std over {a.seeds} subset seeds; oracle = real + {a.ratio} fresh phantoms per real image "
          "with its labels", "", "| real n | real only | oracle (ceiling) | gain |", "|---|---|---|---|"]
    md += [f"| {r['n']} | {r['real_mean']:.3f} ± {np.std(r['real']):.3f} | {r['oracle_mean']:.3f} ± "
           f"{np.std(r['oracle']):.3f} | {r['gain']:+.3f} |" for r in rows]
    md += [f"| {a.pool} (pool) | {pool_auc:.3f} | | |", "",
           f"headroom pass (n=50 real in [0.75, 0.85] and oracle gain >= 0.1): {verdict}"]
    write_json(a.out / "headroom.json", result)
    write_text(a.out / "table.md", "\n".join(md) + "\n")
    print("\n".join(md))
    return result


if __name__ == "__main__":
    main()
