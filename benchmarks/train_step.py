"""Training-step cost of DAE presets: ms/step, images/s, peak memory (forward + backward + Adam).

Each (preset, device) runs in its own subprocess so the peak memory is its own.

    python benchmarks/train_step.py --presets tiny,diffae-64 --batch 16 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def one(preset: str, batch: int, repeats: int, device: str, precision: str) -> dict:
    import torch

    from _common import dae_train_setup, dae_train_step, device_info, peak_rss_mib, timed

    model, objective, opt, x = dae_train_setup(preset, batch, device)

    def step():
        dae_train_step(model, objective, opt, x, device, precision)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = timed(step, repeats, warmup=2, device=device)
    med = statistics.median(times)
    out = {"preset": preset, "device": device, "precision": precision, "batch": batch,
           "params": model.num_parameters()["total"], "ms_per_step": round(1000 * med, 1),
           "images_per_s": round(batch / med, 1), "peak_rss_mib": round(peak_rss_mib(), 1), **device_info()}
    if device == "cuda":
        out["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="tiny,diffae-64")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--one", nargs=3, metavar=("PRESET", "DEVICE", "PRECISION"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.batch, args.repeats, args.one[1], args.one[2])))
        return
    import torch

    runs = [(p, "cpu", "fp32") for p in args.presets.split(",")]
    if torch.cuda.is_available():
        runs += [(p, "cuda", prec) for p in args.presets.split(",") for prec in ("fp32", "bf16")]
    results = []
    for preset, device, precision in runs:
        proc = subprocess.run([sys.executable, __file__, "--batch", str(args.batch), "--repeats", str(args.repeats),
                               "--one", preset, device, precision], capture_output=True, text=True, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(json.dumps({"benchmark": "train_step", "results": results}, indent=2))


if __name__ == "__main__":
    main()
