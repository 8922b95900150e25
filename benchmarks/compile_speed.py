"""torch.compile on this machine: compile time and steady-state speed-up of a train step and of sampling.

For each preset: the eager model and a ``torch.compile``d twin (same weights) run a train step
(forward + backward + Adam, two-phase objective in phase 2) and one decoder call (a DDIM step's
network evaluation) alternately, order swapped every round; medians and ratios. ``compile_s``
is the wall time of the first compiled call (tracing + code generation) minus one eager call;
``break_even_steps`` = compile_s / (eager - compiled), the steps after which compiling has paid.

    OMP_NUM_THREADS=1 python benchmarks/compile_speed.py --presets tiny --repeats 7
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def bench(preset: str, batch: int, repeats: int, device: str, precision: str) -> dict:
    import torch

    from _common import wall_time
    from latentmed.dae import DAEObjective, DiffusionAutoencoder, ObjectiveConfig, preset_config
    from latentmed.train.accel import amp_autocast, compiler_available

    ok, why = compiler_available(device)
    if not ok:
        return {"preset": preset, "compile": "unavailable", "reason": why}
    torch.manual_seed(0)
    cfg = preset_config(preset, schedule="sc-4", prediction="v")
    models = {"eager": DiffusionAutoencoder(cfg).to(device)}
    models["compiled"] = copy.deepcopy(models["eager"])
    nets = {"eager": models["eager"], "compiled": torch.compile(models["compiled"])}
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-4) for k, m in models.items()}
    objective = DAEObjective(ObjectiveConfig(name="two-phase"), total_steps=10)
    x = torch.rand(batch, cfg.in_channels, cfg.image_size, cfg.image_size, device=device) * 2 - 1
    t = torch.full((batch,), 0.5, device=device)

    def train_step(k):
        with amp_autocast(device, precision):
            loss = objective(nets[k], x, 9)[0].mean()
        loss.backward()
        opts[k].step()
        opts[k].zero_grad(set_to_none=True)

    z = models["eager"].encode(x)
    calls = {"eager": models["eager"].unet, "compiled": torch.compile(models["compiled"].unet)}

    @torch.no_grad()
    def decoder_call(k):
        with amp_autocast(device, precision):
            calls[k](x, t, z)

    out = {"preset": preset, "batch": batch, "precision": precision}
    for name, fn in (("train_step", train_step), ("decoder_call", decoder_call)):
        eager_first = wall_time(lambda: fn("eager"), device)
        first = wall_time(lambda: fn("compiled"), device)
        times = {"eager": [], "compiled": []}
        for _ in range(2):  # settle (recompiles, allocator)
            fn("compiled")
            fn("eager")
        for r in range(repeats):
            for k in (("eager", "compiled") if r % 2 == 0 else ("compiled", "eager")):
                times[k].append(wall_time(lambda: fn(k), device))
        e, c = (statistics.median(times[k]) for k in ("eager", "compiled"))
        compile_s = first - eager_first
        out[name] = {"compile_s": round(compile_s, 1), "eager_ms": round(1000 * e, 1),
                     "compiled_ms": round(1000 * c, 1), "speedup": round(e / c, 3),
                     "break_even_steps": round(compile_s / (e - c)) if e > c else None}
    return out


def main() -> None:
    import torch

    from _common import device_info, emit

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="tiny")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--precision", default="no", choices=("no", "bf16"))
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    rows = [bench(p, args.batch, args.repeats, device, args.precision) for p in args.presets.split(",")]
    emit({"benchmark": "compile_speed", "device": device, "results": rows,
          "total_s": round(time.perf_counter() - t0, 1), **device_info()})


if __name__ == "__main__":
    main()
