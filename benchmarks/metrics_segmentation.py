"""Speed of latentmed.metrics.segmentation on batches of 128^3 binary masks; prints JSON.

    OMP_NUM_THREADS=1 python benchmarks/metrics_segmentation.py --batch 4 --size 128 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from latentmed.metrics.segmentation import hausdorff95, segmentation_scores


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    shape = (args.batch, args.size, args.size, args.size)
    # ball-like masks with noisy borders, so that Hausdorff has realistic surfaces
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, args.size)] * 3, indexing="ij"))
    radius = grid.square().sum(0).sqrt()
    truth = (radius[None] < 0.5 + 0.02 * torch.randn(shape, generator=g)).to(args.device)
    pred = (radius[None] < 0.52 + 0.02 * torch.randn(shape, generator=g)).to(args.device)
    result = {
        "what": "segmentation_scores (dice, vs, sen, spec, nmi, kappa) on bool masks",
        "shape": list(shape),
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "seconds_bool": _best_of(lambda: segmentation_scores(truth, pred), args.repeats),
        "seconds_float": _best_of(lambda: segmentation_scores(truth.float(), pred.float()),
                                  args.repeats),
        "seconds_hausdorff95_one_volume": _best_of(lambda: hausdorff95(truth[:1], pred[:1]), 1),
        "dice_mean": float(segmentation_scores(truth, pred)["dice"].mean()),
    }
    result["voxels_per_second_bool"] = truth.numel() / result["seconds_bool"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
