"""Helpers shared by the benchmark scripts: device choice, timing, peak memory, JSON output."""

from __future__ import annotations

import json
import platform
import resource
import sys
import time

import torch


def device_info() -> dict:
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def peak_rss_mib() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def wall_time(fn, device: str = "cpu") -> float:
    """Seconds of one call of ``fn``, synchronising CUDA around it."""
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def timed(fn, repeats: int, warmup: int = 1, device: str = "cpu") -> list[float]:
    """Wall times (s) of ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    return [wall_time(fn, device) for _ in range(repeats)]


def dae_train_setup(preset: str, batch: int, device: str, **overrides):
    """Phase 2 of two-phase training (the full v-loss) for ``preset`` on random images, seeded.

    Returns ``(model, objective, optimizer, x)``; pass them to :func:`dae_train_step`.
    """
    from latentmed.dae import DAEObjective, DiffusionAutoencoder, ObjectiveConfig, preset_config

    torch.manual_seed(0)
    cfg = preset_config(preset, schedule="sc-4", prediction="v", **overrides)
    model = DiffusionAutoencoder(cfg).to(device)
    objective = DAEObjective(ObjectiveConfig(name="two-phase"), total_steps=10)  # called at step 9: phase 2
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, cfg.in_channels, *([cfg.image_size] * cfg.dims), device=device) * 2 - 1
    return model, objective, opt, x


def dae_train_step(net, objective, opt, x, device: str, precision: str) -> None:
    """One optimiser step of ``objective`` on ``x`` under ``precision`` autocast (``no``, ``bf16``, ``fp16``)."""
    from latentmed.train.accel import amp_autocast

    with amp_autocast(device, precision):
        loss = objective(net, x, 9)[0].mean()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def emit(result: dict) -> None:
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
