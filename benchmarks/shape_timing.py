"""Timing of VAE, LEBM and LSD-EBM: reconstruction (refinement) time per sample and training time per epoch.

Prints JSON, with the torch thread count. CPU at ``--sizes`` (e.g. 64,128); 64^3 and 128^3 on
CUDA when available. The paper's Table 3 (A100, 128^3): VAE 0.039 s, LEBM 0.65 s, LSD-EBM
6.25 s per reconstructed sample (its LSD-EBM: 20 reverse steps x 300 Langevin steps).

    OMP_NUM_THREADS=1 python benchmarks/shape_timing.py --sizes 64,128 --epoch-size 100

LSD-EBM is timed with the FULL reverse chain (refinement from t = T: T reverse steps of K
Langevin steps each, ``refine_T_seconds_per_sample``) and with the one-step chain (t = 1,
``refine_t1_seconds_per_sample``; the README's old 0.044 s was this one). ``--T`` and ``--K``
set T and K (default 15 and 20; the paper's timing setting is ``--T 20 --K 300``). Models use
otherwise default configurations (d=100; LEBM K0=60, K1=20 as in Pang et al.), untrained
weights (timing does not depend on the weights). An "epoch" is ``--epoch-size`` samples at
``--batch-size`` (optimizer steps included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def bench(size: int, device: str, batch_size: int, epoch_size: int, repeats: int, models: list[str],
          T: int = 15, K: int = 20, train: bool = True) -> dict:
    import torch

    from latentmed.shape.models import model_class
    from latentmed.shape.objectives import shape_objective

    out = {}
    for name in models:
        cls = model_class(name)
        extra = {"num_steps": T, "langevin_steps": K} if name == "lsd-ebm" else {}
        model = cls(cls.config_class(image_size=size, **extra)).to(device)
        x = (torch.rand(batch_size, 1, size, size, size, device=device) > 0.8).float()
        objective = shape_objective(name)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

        def train_step():
            loss, _ = objective(model, {"x": x}, 0)
            loss.mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync()

        model.train()
        step = _time(train_step, repeats) if train else None
        model.eval()
        one = x[:1]
        full = {"steps": T} if name == "lsd-ebm" else {}

        def refine_one():
            model.refine(one, **full)
            sync()

        def refine_batch():
            model.refine(x, **full)
            sync()

        per_sample = _time(refine_one, repeats)
        batched = _time(refine_batch, repeats) / batch_size
        out[name] = {"train_seconds_per_step": step,
                     "train_seconds_per_epoch": None if step is None else step * epoch_size / batch_size,
                     "refine_seconds_per_sample": per_sample, "refine_seconds_per_sample_batched": batched,
                     "parameters": sum(p.numel() for p in model.parameters())}
        if name == "lsd-ebm":
            out[name].update({"T": T, "K": K, "refine_T_seconds_per_sample": per_sample,
                              "refine_t1_seconds_per_sample": _time(lambda: (model.refine(one, steps=1), sync()),
                                                                    repeats)})
        print(f"# {device} {size}^3 {name}: {json.dumps(out[name])}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="64", help="comma-separated CPU cube sizes")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--epoch-size", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--models", default="vae,lebm,lsd-ebm")
    ap.add_argument("--T", type=int, default=15, help="LSD-EBM reverse steps (the paper's timing: 20)")
    ap.add_argument("--K", type=int, default=20, help="LSD-EBM Langevin steps per reverse step (the paper's: 300)")
    ap.add_argument("--no-train", action="store_true", help="skip the training-step timing")
    args = ap.parse_args()

    import torch

    models = args.models.split(",")
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(),
              "load_average": os.getloadavg(), "batch_size": args.batch_size, "epoch_size": args.epoch_size,
              "cpu": {}}
    for size in (int(s) for s in args.sizes.split(",")):
        result["cpu"][f"{size}^3"] = bench(size, "cpu", args.batch_size, args.epoch_size, args.repeats, models,
                                           args.T, args.K, not args.no_train)
    if torch.cuda.is_available():
        result["cuda"] = {f"{s}^3": bench(s, "cuda", args.batch_size, args.epoch_size, max(3, args.repeats), models,
                                          args.T, args.K, not args.no_train)
                          for s in (64, 128)}
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
