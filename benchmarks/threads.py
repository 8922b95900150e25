"""Thread policy under load: a tiny-preset DAE train step, idle and with a core kept busy.

Each (policy, load) pair runs in its own process, because the OpenMP wait policy is read when
torch loads. Policies:

- ``default``: torch as it comes (its own thread count, OpenMP's spin-waiting), the
  behaviour before ``latentmed.runtime``;
- ``latentmed``: :func:`latentmed.runtime.configure_threads` as the CLI applies it (threads from
  the affinity mask, passive OpenMP wait);
- ``latentmed-1``: the same with ``--threads 1``.

"busy" starts one extra process spinning in a Python loop (one core taken) for the duration of
the measurement. ``--repeats`` runs every (policy, load) pair that many times, interleaved, so
that drifting background load hits all of them alike. Prints JSON: ms/step per run, and per
policy the median over repeats of the mean ms/step idle and busy, and their ratio.

    python benchmarks/threads.py --steps 10 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

POLICIES = ["default", "latentmed", "latentmed-1"]
CLEAN_ENV = ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT",
             "LATENTMED_THREADS"]


def one(policy: str, steps: int, batch: int, size: int, max_seconds: float) -> dict:
    """Time up to ``steps`` train steps of the tiny preset (after 2 warm-up steps) under ``policy``,
    stopping early once ``max_seconds`` have passed (at least one timed step)."""
    line = None
    if policy != "default":
        from latentmed.runtime import configure_threads

        line = configure_threads(1 if policy == "latentmed-1" else None)  # before torch loads
    import torch

    from latentmed.dae import DAEObjective, DiffusionAutoencoder, ObjectiveConfig, preset_config

    torch.manual_seed(0)
    cfg = preset_config("tiny", image_size=size, schedule="sc-4", prediction="v")
    model = DiffusionAutoencoder(cfg)
    objective = DAEObjective(ObjectiveConfig(name="two-phase"), total_steps=10)  # called at step 9: phase 2
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, size, size) * 2 - 1

    def step():
        loss = objective(model, x, 9)[0].mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    start = time.perf_counter()
    for _ in range(2):
        step()
    times = []
    while len(times) < steps and (not times or time.perf_counter() - start < max_seconds):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"threads": torch.get_num_threads(), "steps_timed": len(times),
            "ms_median": round(1000 * statistics.median(times), 1),
            "ms_mean": round(1000 * statistics.mean(times), 1), "ms_max": round(1000 * max(times), 1),
            "policy_line": line}


def measure(policy: str, busy: bool, args) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        time.sleep(0.5 if busy else 0)
        load = os.getloadavg()[0]
        proc = subprocess.run([sys.executable, __file__, "--one", policy, "--steps", str(args.steps), "--batch",
                               str(args.batch), "--size", str(args.size), "--max-seconds", str(args.max_seconds)],
                              env=env, capture_output=True, text=True)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    row = {"policy": policy, "load": "busy" if busy else "idle", "loadavg_1min_before": round(load, 2),
           **json.loads(proc.stdout.strip().splitlines()[-1])}
    print(f"{policy:12s} {row['load']}: {row['ms_mean']} ms/step ({row['steps_timed']} steps, {row['threads']} "
          "threads)", file=sys.stderr)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="Timed steps per measurement.")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--repeats", type=int, default=1, help="Interleaved rounds over all (policy, load) pairs.")
    ap.add_argument("--max-seconds", type=float, default=120,
                    help="Stop a measurement after this long (2 warm-up + at least 1 timed step).")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.steps, args.batch, args.size, args.max_seconds)))
        return
    from latentmed.runtime import available_cpus

    policies = args.policies.split(",")
    rows = [measure(p, busy, args) for _ in range(args.repeats) for p in policies for busy in (False, True)]

    def ms(policy: str, load: str) -> float:
        return round(statistics.median(r["ms_mean"] for r in rows if r["policy"] == policy and r["load"] == load), 1)

    summary = {}
    for p in policies:
        summary[p] = {"idle_ms": ms(p, "idle"), "busy_ms": ms(p, "busy"),
                      "busy_over_idle": round(ms(p, "busy") / ms(p, "idle"), 2)}
        if p != "default" and "default" in policies:
            summary[p]["idle_over_default_idle"] = round(ms(p, "idle") / ms("default", "idle"), 2)
            summary[p]["busy_over_default_busy"] = round(ms(p, "busy") / ms("default", "busy"), 2)
    print(json.dumps({"benchmark": "threads", "cpus": available_cpus(), "os_cpu_count": os.cpu_count(),
                      "preset": "tiny", "size": args.size, "batch": args.batch, "steps": args.steps,
                      "repeats": args.repeats,
                      "summary": summary, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
