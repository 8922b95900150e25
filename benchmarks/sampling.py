"""Inversion and decoding cost: wall time and network evaluations (NFE) per step count.

    python benchmarks/sampling.py --preset tiny --batch 8 --steps 10,20,50,100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    import torch

    from _common import device_info, emit, wall_time
    from latentmed.dae import DiffusionAutoencoder, preset_config

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", default="10,20,50,100")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = preset_config(args.preset, schedule="sc-4", prediction="v")
    dae = DiffusionAutoencoder(cfg).to(device).eval()
    calls = {"n": 0}
    dae.unet.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    x = torch.rand(args.batch, cfg.in_channels, cfg.image_size, cfg.image_size, device=device) * 2 - 1
    z = dae.encode(x)
    dae.decode(z, steps=2)  # warm-up
    rows = []
    for steps in [int(s) for s in args.steps.split(",")]:
        row = {"steps": steps}
        for name, fn in (("invert", lambda: dae.encode_stochastic(x, z, steps)),
                         ("decode", lambda: dae.decode(z, None, steps))):
            calls["n"] = 0
            row[f"{name}_s"] = round(wall_time(fn, device), 3)
            row[f"{name}_nfe"] = calls["n"]
        row["ms_per_nfe"] = round(1000 * (row["invert_s"] + row["decode_s"]) / (row["invert_nfe"] + row["decode_nfe"]), 1)
        rows.append(row)
    emit({"benchmark": "sampling", "preset": args.preset, "batch": args.batch, "device": device,
          "results": rows, **device_info()})


if __name__ == "__main__":
    main()
