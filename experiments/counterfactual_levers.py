"""Levers of the demo's counterfactuals: train a DAE on the spine phantom, grade, move z_sem four ways.

One run = phantom -> two-phase DAE at the demo's settings (``latentmed.demo.run_config``: bf16 on CPUs
with native bf16, no latent DDIM) -> z_sem -> SVM grader (G0 vs G2/G3, 30% held out, class-balanced
like the demo) -> held-out AUC with its reference rows (the same probe on raw pixels and on an
untrained encoder, the supervised CNN) -> counterfactual strips of held-out G0 and G3 vertebrae at
grades -1..4 along each move direction (normal, normal-std, means, pattern). Prints one JSON line
and writes ``OUT/result.json``: training wall time, the grading rows (papers' protocol), per
direction the mean follow slope and the mean centre change (largest |counterfactual - reconstruction|
in the central half).

``--robust plain,adjacent,shift,jitter,levels,verse`` then grades fresh phantoms (another seed, never seen
by the DAE) drawn with other generator options, with the run's DAE: a grader and its reference rows
are fitted on 70% of each and evaluated on the rest (``OUT/robust/<name>/result.json``). ``plain``
(the training phantom's options) is their control. The main phantom's options are ``--jitter``,
``--adjacent-rate``, ``--grade-weights`` and ``--levels`` (a DAE trained on a jittered phantom).

    OMP_NUM_THREADS=1 python experiments/counterfactual_levers.py --out runs/levers14/seed1 --seed 1 \
        --robust plain,adjacent,shift,jitter,levels,verse
    OMP_NUM_THREADS=1 python experiments/counterfactual_levers.py --steps 1600 --out runs/levers14/steps1600

Interrupted runs resume (the DAE from its checkpoint); a finished run only prints its result (and
runs the robustness phantoms it has not graded yet). ``--summary DIR,DIR,...`` prints the tables of
finished runs (experiments/counterfactuals.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

#: Phantom options of the robustness variants (on top of the main phantom's; ``n`` images).
ROBUST = {
    "plain": {},                                              # control: same options, unseen seed
    "adjacent": {"adjacent_fracture_rate": 0.5},              # the grading paper's confounder, 5x as often
    "shift": {"jitter": 0.4},                                  # the centre vertebra off the centre pixels
    "half-shift": {"jitter": 0.2},
    "shift-2000": {"jitter": 0.4, "n": 2000},                 # does more labelled data undo the shift?
    "jitter": {"adjacent_fracture_rate": 0.5, "jitter": 0.4},  # both: a fractured neighbour can sit near the centre
    "levels": {"levels": "all"},                              # T1..L5 (T1-T3 and L5 never in training)
    "verse": {"grade_weights": "verse", "n": 1500},           # VerSe's grade counts 4124/74/102/44
}
ROBUST_SEED = 100  # the variants' phantoms use seed + ROBUST_SEED


def _phantom(path: Path, n: int, size: int, seed: int, opts: dict) -> Path:
    from latentmed.data.phantoms.spine2d import LEVELS, generate_spine2d

    if not (path / "labels.csv").is_file():
        opts = dict(opts)
        if opts.get("levels") == "all":
            opts["levels"] = LEVELS
        generate_spine2d(path, n=opts.pop("n", n), size=size, seed=seed, overwrite=True, **opts)
    return path


def _rows(table) -> list[dict]:
    return [{"method": r["method"], "auc": round(r["detection_auc"], 4),
             "auc_ci": [round(v, 4) for v in r["detection_auc_ci"]], "macro_f1": round(r["macro_f1"], 4)}
            for r in table.rows if "poly" not in r["method"]]


def _grade(dae, phantom: Path, out: Path, size: int, seed: int, class_weight, run: Path) -> tuple:
    """Encode ``phantom`` with ``dae``, fit the grader on 70%, evaluate with its reference rows."""
    from latentmed.dae import encode_dataset
    from latentmed.data import open_images
    from latentmed.latent import Baselines, evaluate_grader, fit_grader, save_latents

    latents = out / "latents.npz"
    if not latents.is_file():
        enc = encode_dataset(dae, open_images(phantom / "images", size=size), progress=False)
        save_latents(latents, enc["ids"], enc["z_sem"].numpy(), None, dae.model_id)
    labels = phantom / "labels.csv"
    grader = fit_grader(latents, labels, "genant", negative=[0], positive=[2, 3], classifier="svm",
                        calibration="means:0,3", holdout=0.3, seed=seed, class_weight=class_weight)
    table = evaluate_grader(grader, latents, labels, baselines=Baselines(phantom, run=run), seed=seed)
    return grader, table


def run(args) -> dict:
    import dataclasses

    import pandas as pd
    import torch

    from latentmed.dae import train_dae
    from latentmed.data import open_images
    from latentmed.demo import DemoSettings, run_config
    from latentmed.latent.counterfactual import DIRECTIONS, load_images_by_id, make_counterfactuals, move_direction

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    phantom = _phantom(out / "phantom", args.n_images, args.size, args.seed, _main_options(args))
    dataset = open_images(phantom / "images", size=args.size)
    s = DemoSettings(n_images=args.n_images, size=args.size, dae_steps=args.steps, batch_size=args.batch, lr=args.lr,
                     ema_decay=args.ema, phase1_fraction=args.phase1, enc_middle=args.enc_middle, latent_steps=0)
    cfg = run_config(s, args.seed)
    if args.width:
        cfg.model["model_channels"] = args.width
    cfg.train = dataclasses.replace(cfg.train, log_every=50, progress=False,
                                    **({"mixed_precision": args.precision} if args.precision else {}))
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    dae = train_dae(cfg, out / "run", dataset).model
    train_s = time.perf_counter() - t0
    grader, table = _grade(dae, phantom, out, args.size, args.seed, _class_weight(args), out / "run")
    grade_of = dict(zip(*pd.read_csv(phantom / "labels.csv")[["id", "genant"]].astype(str).values.T))
    held = grader.metadata_["holdout_ids"]
    picks = [i for g in ("0", "3") for i in [i for i in held if grade_of[i] == g][:args.n_cf // 2]]
    x = load_images_by_id(phantom, picks, size=args.size)
    result = {"settings": vars(args), "train_s": round(train_s, 1), "auc": _rows(table)[0]["auc"],
              "grading": _rows(table), "ids": picks, "directions": {}}
    for d in DIRECTIONS:
        u = move_direction(grader, d)
        cos = 1.0 if u is None else float(grader.normal_ @ u / np.linalg.norm(u))
        t1 = time.perf_counter()
        cf = make_counterfactuals(dae, x, picks, grader, [-1, 0, 1, 2, 3, 4], steps=args.decode_steps,
                                  direction=d, out_dir=out / f"cf_{d}")
        slope, change = cf.follow_slope(), cf.centre_change()
        result["directions"][d] = {"cosine_with_normal": round(cos, 4), "follow_slope": round(float(np.mean(slope)), 4),
                                   "follow_slope_each": [round(float(v), 3) for v in slope],
                                   "centre_change": round(float(np.mean(change)), 4),
                                   "centre_change_each": [round(float(v), 3) for v in change],
                                   "cf_s": round(time.perf_counter() - t1, 1)}
    return result


def robust(args, name: str) -> dict:
    """Grade a fresh phantom drawn with the options ``ROBUST[name]`` using the run's DAE."""
    import pandas as pd

    from latentmed.dae import load_dae

    out = Path(args.out) / "robust" / name
    out.mkdir(parents=True, exist_ok=True)
    opts = {**_main_options(args), **ROBUST[name]}
    t0 = time.perf_counter()
    phantom = _phantom(out / "phantom", args.n_images, args.size, args.seed + ROBUST_SEED, opts)
    _, table = _grade(load_dae(Path(args.out) / "run"), phantom, out, args.size, args.seed, _class_weight(args),
                      Path(args.out) / "run")
    counts = np.bincount(pd.read_csv(phantom / "labels.csv")["genant"].to_numpy(dtype=int), minlength=4)
    return {"variant": name, "options": opts, "grade_counts": counts.tolist(), "n_test": len(table.ids),
            "grading": _rows(table), "wall_s": round(time.perf_counter() - t0, 1)}


def _main_options(args) -> dict:
    opts = {"grade_weights": args.grade_weights, "adjacent_fracture_rate": args.adjacent_rate}
    if args.jitter:
        opts["jitter"] = args.jitter
    if args.levels:
        opts["levels"] = args.levels if args.levels == "all" else args.levels.split(",")
    return opts


def _class_weight(args):
    return None if args.class_weight == "none" else args.class_weight


def summarise(outs: list[str]) -> str:
    """Markdown tables over finished runs: grading rows, per-direction slope and centre change, robustness."""
    res = {o: json.loads((Path(o) / "result.json").read_text()) for o in outs}
    for o, r in res.items():
        for name in sorted((Path(o) / "robust").glob("*/result.json")):
            r.setdefault("robust", {})[name.parent.name] = json.loads(name.read_text())
    dirs = list(next(iter(res.values()))["directions"])
    ref = ["latent", "raw pixels", "random encoder", "CNN"]

    def auc(rows, kind):
        return next(f"{x['auc']:.3f}" for x in rows if x["method"].startswith(kind))

    lines = ["| run | AUC latent / pixels / random enc. / CNN | " + " | ".join(f"slope {d}" for d in dirs) + " | "
             + " | ".join(f"change {d}" for d in dirs) + " | train s |", "|---" * (3 + 2 * len(dirs)) + "|"]
    def cells(r, key):
        return " | ".join(f"{r['directions'][d][key]:.3f}" for d in dirs)

    for o, r in res.items():
        lines.append(f"| {Path(o).name} | {' / '.join(auc(r['grading'], k) for k in ref)} | "
                     f"{cells(r, 'follow_slope')} | {cells(r, 'centre_change')} | {r['train_s']:.0f} |")
    if len(res) > 1:
        def ms(vals):
            return f"{np.mean(vals):.3f} ± {np.std(vals, ddof=1):.3f}"

        def spread(key):
            return " | ".join(ms([r["directions"][d][key] for r in res.values()]) for d in dirs)

        aucs = " / ".join(ms([float(auc(r["grading"], k)) for r in res.values()]) for k in ref)
        lines.append(f"| mean ± sd | {aucs} | {spread('follow_slope')} | {spread('centre_change')} | |")
    rob = [(Path(o).name, k, v) for o, r in res.items() for k, v in r.get("robust", {}).items()]
    if rob:
        lines += ["", "| run | phantom | G0/G1/G2/G3 | n test | " + " | ".join(f"AUC {k} [95% CI]" for k in ref) + " |",
                  "|---" * (4 + len(ref)) + "|"]
        for run_name, k, v in sorted(rob, key=lambda t: (list(ROBUST).index(t[1]), t[0])):
            cells = [next(f"{x['auc']:.3f} [{x['auc_ci'][0]:.2f}, {x['auc_ci'][1]:.2f}]" for x in v["grading"]
                          if x["method"].startswith(m)) for m in ref]
            lines.append(f"| {run_name} | {k} | {'/'.join(map(str, v['grade_counts']))} | {v['n_test']} | "
                         + " | ".join(cells) + " |")
        names = [k for k in ROBUST if sum(k == t[1] for t in rob) > 1]
        if names:  # mean ± sd over the runs
            lines += ["", "| phantom | runs | " + " | ".join(f"AUC {k}" for k in ref) + " |",
                      "|---" * (2 + len(ref)) + "|"]
            for k in names:
                vs = [v for _, name, v in rob if name == k]
                cells = [np.array([next(x["auc"] for x in v["grading"] if x["method"].startswith(m)) for v in vs])
                         for m in ref]
                lines.append(f"| {k} | {len(vs)} | " + " | ".join(f"{c.mean():.3f} ± {c.std(ddof=1):.3f}"
                                                                   for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="run folder (required unless --summary)")
    p.add_argument("--summary", default="", help="comma-separated finished run folders: print markdown tables")
    p.add_argument("--n-images", type=int, default=600)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--ema", type=float, default=0.9999)
    p.add_argument("--phase1", type=float, default=0.25)
    p.add_argument("--width", type=int, default=0, help="model_channels (0: the tiny preset's 32)")
    p.add_argument("--enc-middle", action="store_true", help="DiffAE's encoder middle block")
    p.add_argument("--precision", default="", help="train.mixed_precision (default: the DAE runs' auto)")
    p.add_argument("--class-weight", default="balanced", choices=["balanced", "none"])
    p.add_argument("--grade-weights", default="0.4,0.2,0.2,0.2", help="G0..G3 frequencies or 'verse'")
    p.add_argument("--adjacent-rate", type=float, default=0.1, help="fraction with an adjacent-vertebra fracture")
    p.add_argument("--jitter", type=float, default=0.0, help="crop jitter (spine2d jitter=, in segments)")
    p.add_argument("--levels", default="", help="centre levels, comma-separated, or 'all' (default T4..L4)")
    p.add_argument("--robust", default="", help=f"comma-separated phantom variants: {', '.join(ROBUST)}")
    p.add_argument("--decode-steps", type=int, default=30)
    p.add_argument("--n-cf", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.summary:
        print(summarise(args.summary.split(",")))
        return
    if not args.out:
        p.error("--out is required (or --summary DIR,DIR)")
    path = Path(args.out) / "result.json"
    if path.is_file():
        result = json.loads(path.read_text())
    else:
        result = run(args)
        path.write_text(json.dumps(result) + "\n")
    for name in filter(None, args.robust.split(",")):
        rpath = Path(args.out) / "robust" / name / "result.json"
        if not rpath.is_file():
            r = robust(args, name)
            rpath.write_text(json.dumps(r) + "\n")
        result.setdefault("robust", {})[name] = json.loads(rpath.read_text())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
