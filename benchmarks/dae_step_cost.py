"""Relative cost of one DAE training step for the demo's levers: image size, width, encoder middle block.

Every variant of the ``tiny`` preset runs the same two-phase step (phase 2: the full diffusion loss,
forward + backward + Adam, batch 16) in turns (round robin), so a machine shared with other jobs
slows them alike; the JSON gives the median ms/step of each and its ratio to the first.

    OMP_NUM_THREADS=1 python benchmarks/dae_step_cost.py --variants 32,32:w24,32:middle,64 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def build(spec: str):
    import torch

    from latentmed.dae import DAEObjective, DiffusionAutoencoder, ObjectiveConfig, preset_config

    size, *opts = spec.split(":")
    over = {"image_size": int(size), "schedule": "sc-4", "prediction": "v"}
    for o in opts:
        if o.startswith("w"):
            over["model_channels"] = int(o[1:])
        elif o == "middle":
            over["encoder"] = {"middle": True}
        else:
            raise SystemExit(f"unknown option {o!r} in {spec!r}; use wN or middle")
    torch.manual_seed(0)
    model = DiffusionAutoencoder(preset_config("tiny", **over))
    objective = DAEObjective(ObjectiveConfig(name="two-phase"), total_steps=10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(16, 1, int(size), int(size)) * 2 - 1

    def step():
        loss = objective(model, x, 9)[0].mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, sum(p.numel() for p in model.parameters())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="32,32:w24,32:middle,64")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="steps timed per round")
    args = p.parse_args()
    import torch

    specs = args.variants.split(",")
    runs = {s: build(s) for s in specs}
    for step, _ in runs.values():
        step()  # warm-up
    times: dict[str, list[float]] = {s: [] for s in specs}
    for _ in range(args.rounds):
        for s in specs:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                runs[s][0]()
            times[s].append((time.perf_counter() - t0) / args.steps * 1000)
    base = statistics.median(times[specs[0]])
    out = [{"variant": s, "parameters": runs[s][1], "ms_per_step": round(statistics.median(times[s]), 1),
            "ratio": round(statistics.median(times[s]) / base, 2)} for s in specs]
    print(json.dumps({"threads": torch.get_num_threads(), "batch": 16, "rows": out}))


if __name__ == "__main__":
    main()
