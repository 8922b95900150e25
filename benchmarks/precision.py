"""fp32 vs bf16 (autocast) side by side: train-step and decode speed, and loss curves.

Speed: for each preset, fp32 and bf16 steps alternate in one process on one model (order
swapped every round), so any load from other processes hits both alike; the table reports the
medians and their ratio. Decode: a ``--decode-steps`` DDIM decode from the same x_T in both
precisions (speed, and the PSNR of the bf16 image against the fp32 one).

Curves (``--curve-steps`` > 0): a tiny two-phase DAE on the ``spine2d`` phantom, trained from
scratch in fp32 with seeds 0 and 1 and in bf16 with seed 0 (a seed fixes data order and noise).
bf16 agrees when its distance to fp32 at the same seed is within the seed-to-seed distance of
fp32 (both: mean |difference| of the logged loss, 10-step means, over the phase-2 steps). The
trained fp32 model then inverts and decodes 16 images in fp32 and in bf16 (PSNR of each).

    OMP_NUM_THREADS=1 python benchmarks/precision.py --presets tiny,diffae-64 --repeats 7 --curve-steps 300
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

PRECISIONS = ("no", "bf16")
BATCH = {"tiny": 16, "diffae-64": 4, "vertebra-96": 4}


def _speed(preset: str, batch: int, repeats: int, decode_steps: int, device: str) -> dict:
    import torch

    from _common import dae_train_setup, dae_train_step, wall_time

    model, objective, opt, x = dae_train_setup(preset, batch, device)

    def train_step(precision):
        dae_train_step(model, objective, opt, x, device, precision)

    train = _interleave(lambda p: wall_time(lambda: train_step(p), device), repeats)
    model.eval()
    z = model.encode(x)
    x_T = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(device)

    def decode(precision):
        model.set_inference(precision)
        return wall_time(lambda: model.decode(z, x_T, decode_steps), device)

    dec = _interleave(decode, max(2, repeats // 2))
    return {"preset": preset, "batch": batch, "params": model.num_parameters()["total"],
            "train_ms_fp32": train["no"], "train_ms_bf16": train["bf16"],
            "train_speedup_bf16": round(train["no"] / train["bf16"], 3),
            "decode_steps": decode_steps, "decode_s_fp32": round(dec["no"] / 1000, 3),
            "decode_s_bf16": round(dec["bf16"] / 1000, 3), "decode_speedup_bf16": round(dec["no"] / dec["bf16"], 3)}


def _interleave(fn, repeats: int) -> dict[str, float]:
    """Median ms of ``fn(precision)`` per precision, alternating them (order swapped each round), 1 warm-up each."""
    for p in PRECISIONS:
        fn(p)
    times = {p: [] for p in PRECISIONS}
    for r in range(repeats):
        for p in (PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]):
            times[p].append(fn(p))
    return {p: round(1000 * statistics.median(v), 1) for p, v in times.items()}


def _curves(steps: int, out: Path, bf16_seeds=(0,), decode_steps: int = 30) -> dict:
    from latentmed.dae import DAERunConfig, LatentTrainConfig, ObjectiveConfig, train_dae
    from latentmed.data import open_images
    from latentmed.data.phantoms.spine2d import generate_spine2d
    from latentmed.train import TrainConfig
    from latentmed.train.runlog import RunLogger

    phantom = out / "phantom"
    if not (phantom / "labels.csv").is_file():
        generate_spine2d(phantom, n=256, size=32, seed=0)
    data = open_images(phantom / "images", size=32)
    curves, wall = {}, {}
    runs = [(0, "no"), (1, "no")] + [(s, "bf16") for s in bf16_seeds]
    for seed, precision in runs:
        name = f"{'fp32' if precision == 'no' else precision}_seed{seed}"
        cfg = DAERunConfig(preset="tiny", model={"image_size": 32}, objective=ObjectiveConfig(name="two-phase"),
                           train=TrainConfig(steps=steps, batch_size=16, lr=5e-4, warmup_steps=min(50, steps // 4),
                                             checkpoint_every=0, log_every=10, seed=seed, progress=False,
                                             mixed_precision=precision),
                           latent=LatentTrainConfig(steps=0))
        t0 = time.perf_counter()
        train_dae(cfg, out / name, data)
        wall[name] = round(time.perf_counter() - t0, 1)
        rows = RunLogger(out / name, resume_step=steps).read()
        curves[name] = [(int(r["step"]), float(r["loss"]), int(float(r.get("phase", 2)))) for r in rows]

    def dist(a, b):
        pairs = [(la, lb) for (_, la, pa), (_, lb, _) in zip(curves[a], curves[b]) if pa == 2]
        return round(statistics.mean(abs(la - lb) for la, lb in pairs), 5)

    seed_noise = dist("fp32_seed0", "fp32_seed1")
    same_seed = [dist(f"bf16_seed{s}", f"fp32_seed{s}") for s in bf16_seeds]
    return {"steps": steps, "wall_s": wall, "fp32_seed0_vs_seed1": seed_noise,
            "bf16_vs_fp32_same_seed": same_seed, "bf16_seed0_vs_fp32_seed1": dist("bf16_seed0", "fp32_seed1"),
            "agree": all(d <= seed_noise for d in same_seed),
            "trained_decode": _trained_decode(out / "fp32_seed0", data, decode_steps),
            "final_loss_100_steps": {k: round(statistics.mean(l for s, l, _ in v if s > steps - 100), 5)
                                     for k, v in curves.items()},
            "curves": {k: [[s, round(l, 5)] for s, l, _ in v] for k, v in curves.items()}}


def _trained_decode(run: Path, data, steps: int, n: int = 16) -> dict:
    """Inversion + decoding of ``n`` images by the trained fp32 model, run in fp32 and in bf16."""
    import torch

    from latentmed.dae import load_dae
    from latentmed.metrics.image import psnr

    dae = load_dae(run)
    x = torch.stack([data[i]["image"] for i in range(n)])
    rec = {p: dae.set_inference(p).reconstruct(x, steps=steps) for p in PRECISIONS}
    dae.set_inference("no")
    return {"steps": steps, "n": n, "psnr_fp32_db": round(psnr(x, rec["no"]).mean().item(), 3),
            "psnr_bf16_db": round(psnr(x, rec["bf16"]).mean().item(), 3),
            "bf16_vs_fp32_psnr_db": round(psnr(rec["no"], rec["bf16"]).mean().item(), 2)}


def main() -> None:
    import torch

    from _common import device_info, emit

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="tiny,diffae-64")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--decode-steps", type=int, default=30)
    ap.add_argument("--curve-steps", type=int, default=300, help="0 skips the loss curves")
    ap.add_argument("--out", default="", help="folder for the curve runs (default: a temporary one)")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    speed = [_speed(p, BATCH.get(p, 4), args.repeats, args.decode_steps, device) for p in args.presets.split(",")]
    result = {"benchmark": "precision", "device": device, "speed": speed, **device_info()}
    if args.curve_steps:
        with tempfile.TemporaryDirectory() as tmp:
            result["curves"] = _curves(args.curve_steps, Path(args.out or tmp), decode_steps=args.decode_steps)
    emit(result)


if __name__ == "__main__":
    main()
