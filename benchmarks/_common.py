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


def emit(result: dict) -> None:
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
