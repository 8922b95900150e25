"""Noise against the latent's scale for each LSD-EBM run of a ``shape_experiment.py`` folder (issue 27).

Per run: the RMS of the posterior means of the clean test masks, the RMS distance per coordinate between
the encodings of the coarse and the clean masks, and, at each t, the forward chain's noise per coordinate
(``forward_noise * sigma_cum[t]``) and how far it pulls the mean in (``(1 - a_cum[t]) * RMS``). A useful
t adds noise comparable to the coarse-to-clean distance. Prints JSON.

    OMP_NUM_THREADS=1 python experiments/shape_latent_scale.py --out /tmp/shape32 --size 32
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()

    import torch

    from latentmed.shape.evaluate import load_pairs
    from latentmed.shape.lsd_ebm import LSDEBM
    from latentmed.shape.models import load_shape_model

    names, coarse, truth = load_pairs(args.out / "data/coarse", args.out / "data/test", args.size)
    result = {}
    for config in sorted((args.out / "runs").glob("*/seed*/model/config.json")):
        model = load_shape_model(config.parent)
        if not isinstance(model, LSDEBM):
            continue
        with torch.no_grad():
            clean = model.encode(torch.from_numpy(truth[:, None].astype(np.float32)))[0]
            rough = model.encode(torch.from_numpy(coarse[:, None].astype(np.float32)))[0]
        rms = float(clean.pow(2).mean().sqrt())
        dist = float((clean - rough).pow(2).mean().sqrt())
        per_t = {int(t): {"noise": float(model.config.forward_noise * model.sigma_cum[t]),
                          "mean_pull": float((1 - model.a_cum[t]) * rms)}
                 for t in sorted({0, 1, 2, 5, 10, 15, model.config.num_steps}) if t <= model.config.num_steps}
        result[str(config.parent.parent.relative_to(args.out / "runs"))] = {
            "latent_rms": rms, "coarse_to_clean_rms": dist, "per_t": per_t}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
