"""Speed switches shared by training and inference: bf16 autocast and ``torch.compile``.

bf16 autocast runs matmuls and convolutions in bfloat16 on CPUs with ``avx512_bf16``/AMX and on
GPUs, and needs no loss scaling (unlike fp16). Callers keep their own arithmetic in fp32 (the
DDIM updates, the losses): only the network calls are autocast.
"""

from __future__ import annotations

import functools
import os
import shutil
import warnings

import torch
from torch import nn

from latentmed.errors import LatentmedError

PRECISIONS = ("no", "bf16", "fp16", "auto")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (``avx512_bf16`` or AMX; read from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device_type: str) -> str:
    """``auto`` -> ``bf16`` on a CPU with native bf16 (measured faster with the same loss curve,
    benchmarks/README.md), else ``no``; any other value is returned as given."""
    if precision != "auto":
        return precision
    return "bf16" if device_type == "cpu" and cpu_has_native_bf16() else "no"


def precision_name(precision: str, where: str = "train.mixed_precision") -> str:
    """The one validation of a precision setting (configs call it when built): one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise LatentmedError(f"{where} must be one of {', '.join(PRECISIONS)}; got {precision!r}.")
    return precision


def check_precision(precision: str, device_type: str, where: str = "train.mixed_precision") -> str:
    """``precision`` resolved for ``device_type`` (``auto`` by :func:`resolve_precision`); fp16 needs a GPU."""
    precision_name(precision, where)
    if precision == "fp16" and device_type != "cuda":
        raise LatentmedError(f"{where}=fp16 needs a GPU (loss scaling); on {device_type} use bf16 or no.")
    return resolve_precision(precision, device_type)


def amp_autocast(device_type: str, precision: str) -> torch.autocast:
    """``torch.autocast`` for ``precision`` (``bf16`` on CPU or CUDA, ``fp16`` on CUDA); disabled for ``no``."""
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type, dtype=dtype, enabled=precision in ("bf16", "fp16"))


def compiler_available(device_type: str = "cpu") -> tuple[bool, str]:
    """Whether ``torch.compile``'s default backend (inductor) can build code here, and why not."""
    try:
        import torch._inductor  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the installation
        return False, f"torch inductor does not import ({exc})"
    if device_type == "cpu":
        names = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
        if not any(n and shutil.which(n) for n in names):
            return False, "no C++ compiler (g++ or clang++) on PATH, which inductor needs for CPU code"
    return True, ""


def compile_module(module: nn.Module, device_type: str = "cpu"):
    """``torch.compile(module)``; falls back to the module itself, with a warning saying why, where it cannot."""
    ok, why = compiler_available(device_type)
    if not ok:
        warnings.warn(f"compile requested but {why}; running uncompiled (install one, or turn compile off).",
                      stacklevel=2)
        return module
    return torch.compile(module)
