"""Baseline vs one-phase vs two-phase DAE training, same data and budget (two-phase paper, Table 4).

Trains three DAEs per data set (``baseline``: eps + linear-beta; ``one-phase``: v + sc-4;
``two-phase``: t = 1 for the first quarter of the steps, then v + sc-4) with the same
TrainConfig and seed, on the spine2d phantom and on scikit-learn's bundled handwritten digits
(8x8, upscaled; no download), and writes ``OUT/comparison.md`` + ``.json`` with stochastic
(random x_T) and inversion reconstruction PSNR/SSIM on held-out images.

CPU (tiny preset; --steps 200 took 30 min for all six models on a busy 2-core machine; runs resume):

    OMP_NUM_THREADS=2 python experiments/compare_training.py --out runs/compare

GPU, real preset (scale the budget with the flags):

    python experiments/compare_training.py --preset diffae-64 --size 64 --steps 20000 --batch-size 64 \\
        --n-train 4000 --n-test 256 --eval-steps 10,20,50,100 --device cuda --out runs/compare-gpu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> dict:
    from latentmed.evaluation import write_report
    from latentmed.evaluation.comparison import (METHODS, compare_methods, comparison_table, digits_images,
                                                 spine2d_images, winners)
    from latentmed.train import TrainConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/compare", help="output folder (runs resume when it exists)")
    p.add_argument("--datasets", default="spine2d,digits")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--preset", default="tiny", help="DAE preset (tiny, diffae-64, vertebra-96)")
    p.add_argument("--size", type=int, default=32, help="image size")
    p.add_argument("--steps", type=int, default=400, help="training steps per model (the budget)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--n-train", type=int, default=512)
    p.add_argument("--n-test", type=int, default=64)
    p.add_argument("--eval-steps", default="10,20", help="DDIM steps for reconstruction")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="evaluation device (training picks it through accelerate)")
    args = p.parse_args(argv)

    out = Path(args.out)
    n_total = args.n_train + args.n_test
    data: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name in [d for d in args.datasets.split(",") if d]:
        if name == "spine2d":
            images = spine2d_images(n_total, args.size, out / "data" / f"spine2d_{n_total}_{args.size}", seed=args.seed)
        elif name == "digits":
            images = digits_images(args.size, seed=args.seed)[:n_total]
        else:
            raise SystemExit(f"unknown data set {name!r}; expected spine2d or digits")
        data[name] = (images[: args.n_train], images[args.n_train: n_total])

    tcfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay,
                       warmup_steps=min(50, args.steps // 10), checkpoint_every=max(args.steps // 2, 1),
                       log_every=max(args.steps // 20, 1), seed=args.seed, progress=False)
    start = time.perf_counter()
    results = compare_methods(data, out, train_config=tcfg, methods=args.methods.split(","), preset=args.preset,
                              model_overrides={"image_size": args.size},
                              eval_steps=[int(s) for s in args.eval_steps.split(",")], seed=args.seed,
                              device=args.device)
    records = comparison_table(results)
    summary = winners(records)
    meta = {"command": "python experiments/compare_training.py " + " ".join(argv if argv is not None else
                                                                            __import__("sys").argv[1:]),
            "preset": args.preset, "size": args.size, "train steps": args.steps, "batch size": args.batch_size,
            "lr": args.lr, "EMA": args.ema_decay, "n train / test": f"{args.n_train} / {args.n_test}",
            "seed": args.seed, "total minutes": round((time.perf_counter() - start) / 60, 1)}
    paths = write_report(out, "comparison", "DAE training methods: reconstruction of held-out images", records,
                         meta=meta, notes=["PSNR in dB on [-1, 1]; stochastic = random x_T, inversion = DDIM-inverted "
                                           "x_T, same step grid.", "", *[f"- {s}" for s in summary]])
    print(Path(paths["markdown"]).read_text())
    return {"records": records, "summary": summary, "paths": {k: str(v) for k, v in paths.items()}}


if __name__ == "__main__":
    print(json.dumps(main()["summary"], indent=2))
