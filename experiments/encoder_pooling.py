"""Does z_sem learn the fracture? Average-pooling vs flattening encoder heads, probed while training.

Trains one DAE per encoder head (``encoder.pool``: ``avg`` is DiffAE's global average pooling,
``flatten`` a linear map of the whole last feature map) on the same ``spine2d`` phantom with
the same objective, seed and batches, and every ``--every`` steps fits a 5-fold cross-validated
logistic regression (standardised z_sem, G0 against G2/G3, G1 left out) and prints one JSON line
``{"pool", "step", "loss", "auc": {C: AUC}, "seconds"}``. A random-initialised encoder (step 0)
is the floor to beat. Labels are used only by the probe, never by the DAE.

CPU (tiny preset, 1200 steps as in ``latentmed demo``; about 10 min per head with one thread):

    OMP_NUM_THREADS=1 python experiments/encoder_pooling.py --pools avg,flatten --steps 1200 --out runs/pooling
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def probe_auc(z: np.ndarray, y: np.ndarray, cs=(0.01, 0.1, 1.0), seed: int = 0) -> dict[str, float]:
    """5-fold cross-validated ROC AUC of a standardised logistic regression on ``z`` for each C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return {str(c): round(float(cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)),
                                                z, y, cv=folds, scoring="roc_auc").mean()), 3) for c in cs}


def main(argv: list[str] | None = None) -> list[dict]:
    import pandas as pd

    from latentmed.dae import DAEObjective, DiffusionAutoencoder, ObjectiveConfig, preset_config
    from latentmed.data import open_images
    from latentmed.data.phantoms.spine2d import generate_spine2d

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pools", default="avg,flatten")
    p.add_argument("--data", default=None, help="spine2d folder (default: generate --n images in a temp folder)")
    p.add_argument("--n", type=int, default=600)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--every", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--objective", default="two-phase", help="baseline, one-phase or two-phase")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write pooling.json and pooling.md here")
    a = p.parse_args(argv)

    data = Path(a.data) if a.data else Path(tempfile.mkdtemp()) / "spine2d"
    if not (data / "labels.csv").is_file():
        generate_spine2d(data, n=a.n, size=a.size, seed=a.seed, grade_weights=(0.4, 0.2, 0.2, 0.2))
    ds = open_images(data / "images", size=a.size)
    x = torch.stack([ds[i]["image"] for i in range(len(ds))])
    grade = pd.read_csv(data / "labels.csv").set_index("id").loc[ds.ids, "genant"].to_numpy()
    keep = grade != 1
    y = (grade[keep] >= 2).astype(int)

    rows = []
    for pool in a.pools.split(","):
        torch.manual_seed(a.seed)
        objective = ObjectiveConfig(name=a.objective)
        dae = DiffusionAutoencoder(preset_config("tiny", image_size=a.size, encoder={"pool": pool},
                                                 schedule=objective.resolved_schedule,
                                                 prediction=objective.resolved_prediction))
        loss_fn = DAEObjective(objective, a.steps)
        opt = torch.optim.Adam(dae.parameters(), lr=a.lr)
        batches = torch.Generator().manual_seed(a.seed)
        t0, loss = time.perf_counter(), None
        for step in range(a.steps + 1):
            if step % a.every == 0 or step == a.steps:
                with torch.no_grad():
                    z = torch.cat([dae.eval().encode(x[i:i + 200]) for i in range(0, len(x), 200)]).numpy()
                dae.train()
                row = dict(pool=pool, step=step, loss=None if loss is None else round(loss, 4),
                           auc=probe_auc(z[keep], y, seed=a.seed), seconds=round(time.perf_counter() - t0, 1))
                print(json.dumps(row), flush=True)
                rows.append(row)
            if step == a.steps:
                break
            idx = torch.randint(len(x), (a.batch_size,), generator=batches)
            value = loss_fn(dae, x[idx], step)[0].mean()
            opt.zero_grad()
            value.backward()
            torch.nn.utils.clip_grad_norm_(dae.parameters(), 1.0)
            opt.step()
            loss = float(value.detach())
    if a.out:
        from latentmed.io import write_json, write_text

        write_json(Path(a.out) / "pooling.json", dict(settings=vars(a), rows=rows))
        cs = list(rows[0]["auc"])
        lines = ["| pool | step | " + " | ".join(f"AUC C={c}" for c in cs) + " |", "|---" * (2 + len(cs)) + "|"]
        lines += [f"| {r['pool']} | {r['step']} | " + " | ".join(str(r["auc"][c]) for c in cs) + " |" for r in rows]
        write_text(Path(a.out) / "pooling.md", "\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    main()
