"""How a latentmed process runs: its thread policy and its seeds.

Threads. torch's OpenMP workers spin-wait at the end of every parallel op; on a shared machine
where another process holds a core, the worker on that core is descheduled and every small op
waits for it (``latentmed demo`` went from minutes to hours). The policy here:

- threads = the CPUs this process may run on (``os.sched_getaffinity``, which honours
  ``taskset``, cpusets and job schedulers, capped by a cgroup CPU quota such as
  ``docker --cpus``) rather than every core of the machine;
- OpenMP workers that sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``, and
  ``KMP_BLOCKTIME=0`` for Intel's runtime). The OpenMP runtime reads these when it is loaded, so
  :func:`prepare_environment` must run before ``import torch`` (the CLI does it at start-up);
- ``--threads N`` or ``LATENTMED_THREADS=N`` override the count (``OMP_NUM_THREADS`` too, as torch
  reads it itself); a wait policy the user set is kept.

``benchmarks/threads.py`` measures the policy against torch's defaults, idle and with a core busy.

Seeds. :func:`seed_everything` seeds ``random``, NumPy and torch; every function that builds a
model calls it first, so two processes with the same seed build the same initial weights.
"""

from __future__ import annotations

import os
import random
import sys

from latentmed.errors import LatentmedError

ENV_THREADS = "LATENTMED_THREADS"
# Set (unless already set) before the OpenMP runtime loads: workers sleep rather than spin.
OPENMP_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota; at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(n, quota) if quota else n)


def _cgroup_cpu_quota() -> int | None:
    """CPUs allowed by a cgroup v2 (``cpu.max``) or v1 (``cpu.cfs_quota_us``) quota, rounded up; None if unlimited."""
    import math

    v2 = _read("/sys/fs/cgroup/cpu.max")  # "max 100000" (unlimited) or "200000 100000" (2 CPUs)
    if v2:
        quota, period = (v2.split() + ["100000"])[:2]
    else:
        quota = _read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") or "-1"
        period = _read("/sys/fs/cgroup/cpu/cpu.cfs_period_us") or "100000"
    if not (quota.isdigit() and period.isdigit() and int(quota) > 0 and int(period) > 0):
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def prepare_environment() -> bool:
    """Set the passive OpenMP wait policy unless the user chose one; ``False`` if torch was already imported.

    Only effective before ``import torch`` (the OpenMP runtime reads it once, when loaded).
    """
    for key, value in OPENMP_ENV.items():
        os.environ.setdefault(key, value)
    return "torch" not in sys.modules


def parse_threads(value: str | int | None, source: str) -> int | None:
    """A positive thread count from ``--threads`` / ``LATENTMED_THREADS`` (``None``, ``""``, ``0``: automatic)."""
    if value is None or str(value).strip() in ("", "0", "auto"):
        return None
    try:
        n = int(str(value).strip())
    except ValueError:
        n = -1
    if n < 1:
        raise LatentmedError(f"{source} must be a positive number of threads (or 0 / auto for automatic), got "
                             f"{value!r}.")
    return n


def choose_threads(requested: int | None = None) -> tuple[int, str]:
    """``(threads, where the number came from)``: ``requested``, then ``LATENTMED_THREADS``,
    then ``OMP_NUM_THREADS``, then the CPUs of the affinity mask (``"cpus"``)."""
    if requested is not None:
        n = parse_threads(requested, "--threads")
        if n is not None:
            return n, "--threads"
    n = parse_threads(os.environ.get(ENV_THREADS), ENV_THREADS)
    if n is not None:
        return n, ENV_THREADS
    omp = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp), "OMP_NUM_THREADS"
    return available_cpus(), "cpus"


def configure_threads(requested: int | None = None) -> str:
    """Apply the thread policy to this process and return the one-line description of the choice.

    Before ``import torch``: sets the passive wait policy and ``OMP_NUM_THREADS`` (torch sizes its
    pool from it when it loads; child processes inherit it) without importing torch. After:
    ``torch.set_num_threads`` (the wait policy can then no longer change).
    """
    fresh = prepare_environment()
    n, source = choose_threads(requested)
    if fresh:
        os.environ["OMP_NUM_THREADS"] = str(n)
    else:
        import torch

        torch.set_num_threads(n)
    cpus = available_cpus()
    where = f"the {cpus} CPUs this process may use" if source == "cpus" else f"{source}; {cpus} CPUs available"
    wait = os.environ.get("OMP_WAIT_POLICY", "default").lower() if fresh else "as loaded with torch"
    return f"Threads: {n} ({where}), OpenMP wait policy {wait}. Change with --threads N or {ENV_THREADS}=N."


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA) with ``seed``."""
    import numpy as np
    import torch

    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


__all__ = ["ENV_THREADS", "available_cpus", "choose_threads", "configure_threads", "parse_threads",
           "prepare_environment", "seed_everything"]
