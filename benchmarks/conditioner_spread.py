"""Spread and label content of conditioning tokens on chest2d (issue 16): random ViT raw vs pool-standardised vs PCA.

    OMP_NUM_THREADS=1 python benchmarks/conditioner_spread.py --variant varied --pool 1000 --labelled 600

Fits the pool standardisation / PCA on an UNLABELLED draw (seed 10), then on a labelled draw (seed 1)
reports the mean pairwise cosine of the flattened tokens (1 = no spread) and a linear probe's
5-fold macro AUC (scikit-learn LogisticRegression on standardised tokens). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--variant", default="varied")
    p.add_argument("--pool", type=int, default=1000)
    p.add_argument("--labelled", type=int, default=600)
    p.add_argument("--size", type=int, default=32)
    a = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    from chest2d_headroom import render_set
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from latentmed.ldm.augment import macro_auc
    from latentmed.ldm.conditioner import DinoConditioner, PCAConditioner

    torch.set_num_threads(1)
    down = lambda x: torch.nn.functional.interpolate(x, size=(a.size, a.size), mode="area")  # noqa: E731
    x_pool, _ = render_set(a.pool, 10, a.variant, 64)
    x_lab, y_lab = render_set(a.labelled, 1, a.variant, 64)
    x_pool, x_lab = down(x_pool), down(x_lab)
    vit = DinoConditioner.tiny(image_size=32, hidden_size=64, layers=2)
    raw = vit(x_lab).flatten(1)
    std = DinoConditioner.tiny(image_size=32, hidden_size=64, layers=2).fit_standardisation(x_pool)
    pca = PCAConditioner.fit(x_pool, width=64, image_size=32)
    out = {"variant": a.variant, "pool": a.pool, "labelled": a.labelled}
    for name, cond, toks in (("random ViT raw", vit, raw), ("random ViT pool-standardised", std, std(x_lab).flatten(1)),
                             ("PCA 64 pool-standardised", pca, pca(x_lab).flatten(1))):
        t = torch.nn.functional.normalize(toks.double(), dim=1)
        cos = (t @ t.T)[~torch.eye(len(t), dtype=torch.bool)].mean().item()
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        scores = np.stack([cross_val_predict(probe, toks.numpy(), y_lab[:, j], cv=5, method="predict_proba")[:, 1]
                           for j in range(y_lab.shape[1])], 1)
        out[name] = {"label": cond.label, "mean_pairwise_cosine": cos,
                     "probe_macro_auc_5fold": macro_auc(y_lab, scores)}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
