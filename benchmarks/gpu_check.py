"""One GPU check (run it through ``benchmarks/gpu_check.sh``): bf16 throughput and utilisation, one JSON.

Sections (each timed after warm-up, CUDA-synchronised):

- ``train``: bf16-autocast train steps (two-phase objective, phase 2, Adam) of ``diffae-64`` and
  ``vertebra-96``: images/s, and model FLOP utilisation = FLOPs counted by
  ``torch.utils.flop_counter`` for one step (forward + backward) / step time / the GPU's peak
  dense bf16 FLOP/s (``--peak-tflops``, else a table of common GPUs; null when unknown).
- ``decode``: ``diffae-64`` DDIM decoding at 30 and 100 steps, bf16: images/s.
- ``lsd_ebm``: LSD-EBM full-chain reconstruction (refinement from T) of one 128^3 mask: s/sample.
- ``ldm``: one bf16 train step of a DiNO-Diffusion UNet on 32x32x4 latents with 5 tokens of width
  768: images/s.

``--dry-run`` runs every section at tiny sizes on the CPU in seconds (tests/test_gpu_check.py),
so the script cannot rot; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

#: Peak dense bf16 tensor-core FLOP/s (vendor data sheets, without sparsity), matched by name.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "H100": 756.0,
                    "A100": 312.0,
                    "L40S": 362.0, "L4": 121.0, "A10G": 70.0, "A10": 125.0, "RTX 4090": 165.0, "RTX 3090": 71.0}

FULL = dict(presets=("diffae-64", "vertebra-96"), dae={}, train_batch=64, train_steps=10, decode_batch=64,
            decode_steps=(30, 100), ebm_size=128, ebm={}, ldm=dict(latent=32, channels=(320, 640, 1280), batch=32),
            warmup=3)
DRY = dict(presets=("tiny", "tiny"), dae=dict(image_size=16), train_batch=2, train_steps=2, decode_batch=2,
           decode_steps=(2, 3), ebm_size=16, ebm=dict(num_steps=2, langevin_steps=2),
           ldm=dict(latent=8, channels=(32, 64), batch=2), warmup=1)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _median_time(fn, repeats: int, warmup: int, device: str) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def peak_flops(device: str, override_tflops: float | None) -> float | None:
    """Peak dense bf16 FLOP/s of the GPU (``None`` on CPU or for an unknown GPU without ``--peak-tflops``)."""
    if override_tflops:
        return override_tflops * 1e12
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name(0)
    for key, tf in PEAK_BF16_TFLOPS.items():  # longest names first in the table where they overlap
        if key in name:
            return tf * 1e12
    return None


def train_section(s: dict, device: str, peak: float | None, compile: bool) -> list[dict]:
    from _common import dae_train_setup, dae_train_step
    from latentmed.train.accel import compile_module

    rows = []
    for preset in s["presets"]:
        b = s["train_batch"]
        model, objective, opt, x = dae_train_setup(preset, b, device, **s["dae"])
        net = compile_module(model, device) if compile else model

        def step():
            dae_train_step(net, objective, opt, x, device, "bf16")

        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        sec = _median_time(step, s["train_steps"], s["warmup"], device)
        flops = _flops(step) if not compile else _flops(lambda: _eager_step(model, objective, x, device))
        row = {"preset": preset, "batch": b, "params": model.num_parameters()["total"], "s_per_step": round(sec, 4),
               "images_per_s": round(b / sec, 1), "gflop_per_image": round(flops / b / 1e9, 2),
               "achieved_tflops": round(flops / sec / 1e12, 2),
               "mfu": None if peak is None else round(flops / sec / peak, 4),
               "section_s": round(time.perf_counter() - t0, 1)}
        if device == "cuda":
            row["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        rows.append(row)
        del model, net, opt
    return rows


def _eager_step(model, objective, x, device):
    from latentmed.train.accel import amp_autocast

    with amp_autocast(device, "bf16"):
        loss = objective(model, x, 9)[0].mean()  # step 9: phase 2
    loss.backward()
    model.zero_grad(set_to_none=True)


def decode_section(s: dict, device: str) -> list[dict]:
    from latentmed.dae import DiffusionAutoencoder, preset_config

    cfg = preset_config(s["presets"][0], schedule="sc-4", prediction="v", **s["dae"])
    dae = DiffusionAutoencoder(cfg).to(device).eval().set_inference("bf16")
    b = s["decode_batch"]
    g = torch.Generator(device=device).manual_seed(0)
    z = torch.randn(b, cfg.z_dim, device=device, generator=g)
    x_T = torch.randn(b, cfg.in_channels, cfg.image_size, cfg.image_size, device=device, generator=g)
    rows = []
    for steps in s["decode_steps"]:
        sec = _median_time(lambda: dae.decode(z, x_T, steps), 2, 1, device)
        rows.append({"preset": s["presets"][0], "steps": steps, "batch": b, "s_per_batch": round(sec, 3),
                     "images_per_s": round(b / sec, 1), "ms_per_network_call": round(1000 * sec / steps, 2)})
    return rows


def lsd_ebm_section(s: dict, device: str) -> dict:
    from latentmed.shape.models import model_class

    cls = model_class("lsd-ebm")
    size = s["ebm_size"]
    base = cls.config_class(image_size=size, **s["ebm"])
    model = cls(cls.config_class(image_size=size, refine_steps=base.num_steps, **s["ebm"])).to(device).eval()
    x = (torch.rand(1, 1, size, size, size, device=device) > 0.8).float()
    sec = _median_time(lambda: model.refine(x), 2, 1, device)
    return {"image_size": size, "chain_steps": base.num_steps, "langevin_steps": base.langevin_steps,
            "s_per_sample": round(sec, 3)}


def ldm_section(s: dict, device: str) -> dict:
    from latentmed.diffusion import diffusion_loss, get_schedule, sample_times
    from latentmed.ldm.model import LatentUNet, build_unet
    from latentmed.train.accel import amp_autocast

    c = s["ldm"]
    torch.manual_seed(0)
    unet = build_unet(4, c["latent"], 768, c["channels"], 2 if device == "cuda" else 1,
                      norm_num_groups=min(32, c["channels"][0])).to(device)
    net = LatentUNet(unet)
    opt = torch.optim.Adam(unet.parameters(), lr=1e-4)
    z0 = torch.randn(c["batch"], 4, c["latent"], c["latent"], device=device)
    tokens = torch.randn(c["batch"], 5, 768, device=device)
    sched = get_schedule("linear")

    def step():
        with amp_autocast(device, "bf16"):
            loss = diffusion_loss(net, z0, sample_times(c["batch"], "uniform", device=device), sched, "eps",
                                  cond=tokens).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    sec = _median_time(step, s["train_steps"], s["warmup"], device)
    return {"latent": c["latent"], "channels": list(c["channels"]), "batch": c["batch"],
            "params": sum(p.numel() for p in unet.parameters()), "s_per_step": round(sec, 4),
            "images_per_s": round(c["batch"] / sec, 1)}


def main(argv=None) -> dict:
    from _common import device_info

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (the test suite's check)")
    ap.add_argument("--out", default="gpu_check.json", help="where the JSON goes (also printed)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the GPU's peak dense bf16 TFLOP/s")
    ap.add_argument("--compile", action="store_true", help="torch.compile the train steps too")
    args = ap.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() and not args.dry_run else "cpu"
    if device == "cpu" and not args.dry_run:
        raise SystemExit("gpu_check: no CUDA device visible; use --dry-run for the CPU smoke test.")
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    s = DRY if args.dry_run else FULL
    peak = peak_flops(device, args.peak_tflops)
    t0 = time.perf_counter()
    out = Path(args.out)
    result = {"benchmark": "gpu_check", "dry_run": args.dry_run, "device": device,
              "peak_bf16_tflops": None if peak is None else peak / 1e12, "compile": args.compile, **device_info()}
    for name, fn in (("train", lambda: train_section(s, device, peak, args.compile)),
                     ("decode", lambda: decode_section(s, device)), ("lsd_ebm", lambda: lsd_ebm_section(s, device)),
                     ("ldm", lambda: ldm_section(s, device))):
        try:
            result[name] = fn()
        except Exception as exc:  # one broken section must not lose the others' figures on a GPU
            if args.dry_run:
                raise
            result[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"# {name} done at {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        if device == "cuda":
            torch.cuda.empty_cache()
        result["total_s"] = round(time.perf_counter() - t0, 1)
        _write(out, result)  # after every section: a timeout keeps the finished ones
    print(json.dumps(result, indent=2))
    return result


def _write(out: Path, result: dict) -> None:
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
