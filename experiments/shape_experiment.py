"""Shape refinement experiment on the spine3d phantom with simulated thick slices (issue 15).

1. spine3d phantom: ``--n-train`` training masks (seed 1), ``--n-test`` test masks (other
   individuals, seed 2), with their part labels;
2. coarse test inputs by :func:`simulate_thick_slices` with its defaults (6 mm sagittal slabs,
   partial volume 0.75);
3. train VAE, LEBM and LSD-EBM (one run per T in ``--T``) for every seed in ``--seeds``;
4. refine the coarse test inputs (LSD-EBM from every t in ``--refine-steps``), score overall and
   on the posterior elements (Dice, precision, recall, VS, HD95, NMI, kappa);
5. reference rows: input, constant mask (floor: voxel-wise majority of the training masks),
   the VAE on the CLEAN test masks (ceiling), and the check ``floor + 0.1 < input < ceiling - 0.1``;
6. mean +- sd over seeds (of each seed's case mean) and paired tests LSD-EBM vs VAE
   (over seeds, and over cases with each case averaged over seeds); ``results.json``, ``table.md``.

Resumable at every level: each (model, seed) run resumes from its checkpoint, ``--chunk-steps N``
trains at most N more steps per run and call (so a long experiment runs in pieces), and each
run's evaluation is stored in ``eval.json`` beside it and reused. Run it again to continue::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nohup python experiments/shape_experiment.py --out runs/shape_exp \\
        --size 64 --n-train 200 --n-test 25 --steps 3000 --seeds 0,1,2 --T 2,15,20 \\
        --chunk-steps 500 > runs/shape_exp.log 2>&1 &

``--train-only`` stops after training (no evaluation); the table is written once every run
has reached ``--steps``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


N_FIGURES = 3


def _run_specs(args) -> list[tuple[str, str, list[str], int]]:
    """``(label, kind, overrides, steps)`` per run; ``{joint}`` in an override is the seed's joint LSD-EBM run."""
    specs: list[tuple[str, str, list[str], int]] = []
    wanted = args.models.split(",")
    if "vae" in wanted:
        specs.append(("VAE", "vae", [], args.steps))
    if "lebm" in wanted:
        specs.append(("LEBM", "lebm", [f"model.posterior_steps={args.lebm_posterior_steps}",
                                        f"model.prior_steps={args.lebm_prior_steps}",
                                        f"model.posterior_step_size={args.lebm_posterior_step_size}"],
                      args.lebm_steps or args.steps))
    if "lsd-ebm" in wanted:
        chain = [f"model.langevin_noise={args.langevin_noise}", f"model.langevin_steps={args.langevin_steps}"]
        joint = [int(t) for t in args.T.split(",") if t] if not args.two_stage else [args.joint_T]
        for T in joint:  # Algorithm 1: autoencoder and energy in one stage
            specs.append((f"LSD-EBM T={T}", "lsd-ebm", [f"model.num_steps={T}", *chain], args.steps))
        if args.two_stage:  # the energy of each T on the joint run's fixed autoencoder
            for T in [int(t) for t in args.T.split(",") if t]:
                specs.append((f"LSD-EBM T={T} two-stage", "lsd-ebm", [
                    f"model.num_steps={T}", *chain, "train.init_autoencoder={joint}", "train.freeze_autoencoder=true"],
                    args.energy_steps or args.steps))
        if args.ref_T:  # the authors' code as one option (objective.recipe=reference), at --ref-lr
            lr_note = "" if args.ref_lr == 2e-5 else f" lr={args.ref_lr:g}"
            specs.append((f"LSD-EBM reference T={args.ref_T}{lr_note}", "lsd-ebm", [
                "objective.recipe=reference", f"model.num_steps={args.ref_T}", f"train.lr={args.ref_lr}",
                f"train.energy_lr={args.ref_lr}", "train.batch_size=4", "train.grad_clip=0", "train.ema_decay=0"],
                args.ref_steps or args.steps))
        if args.vae_energy_T:  # needs the VAE runs (trained by this call or an earlier one)
            # the energy on the VAE's autoencoder (KL 1: latents ~ N(0, I), the scale the chain's noise has)
            T = args.vae_energy_T
            specs.append((f"LSD-EBM T={T} on the VAE autoencoder", "lsd-ebm", [
                f"model.num_steps={T}", *chain, "train.init_autoencoder={VAE}", "train.freeze_autoencoder=true"],
                args.vae_energy_steps or args.energy_steps or args.steps))
    return specs


def _run_dir(out: Path, label: str, seed: int) -> Path:
    return out / "runs" / label.replace(" ", "_").replace("=", "") / f"seed{seed}"


def _last_log(run_dir: Path) -> dict:
    """The last row of the run's CSV log (``log.csv``), or ``{}``."""
    import csv

    path = run_dir / "log.csv"
    rows = list(csv.DictReader(path.open())) if path.is_file() else []
    return rows[-1] if rows else {}


def _done_steps(run_dir: Path) -> int:
    from latentmed.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(run_dir) if (run_dir / "checkpoint").exists() else None
    return int(ckpt[2]["step"]) if ckpt is not None else 0


def _refine_variants(label: str, model, args) -> list[tuple[str, int | None]]:
    if not label.startswith("LSD-EBM"):
        return [(label, None)]
    T = model.config.num_steps
    ts = sorted({min(T, int(s)) if s != "T" else T for s in args.refine_steps.split(",") if s})
    return [(f"{label} t={t}", t) for t in ts]


def _controls(label: str, model, coarse, truth, both, seed: int) -> dict:
    """The control rows of one run: LSD-EBM energy off, round trip and direction (at its default t);
    the VAE decoding a posterior sample (as the reference's VAE does)."""
    from latentmed.shape.controls import chain_direction, energy_off
    from latentmed.shape.evaluate import refine_cubes

    out = {}
    if label == "VAE":
        pred, sec = refine_cubes(model, coarse, batch_size=5, seed=seed, recipe="reference")
        out["VAE sampled (reference's scoring)"] = {**both(pred), "seconds_per_sample": sec}
    if not label.startswith("LSD-EBM"):
        return out
    t = model.config.default_refine_steps
    with energy_off(model):
        pred, sec = refine_cubes(model, coarse, batch_size=5, seed=seed)
    out[f"{label} t={t} energy off"] = {**both(pred), "seconds_per_sample": sec}
    pred, sec = refine_cubes(model, truth, batch_size=5, seed=seed)
    out[f"{label} t={t} round trip (clean in)"] = {**both(pred), "seconds_per_sample": sec}
    d = chain_direction(model, coarse, truth, seed=seed, batch_size=5)
    out["_direction"] = {k: v.tolist() for k, v in d.items()}
    return out


def _summarise(per_seed: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, list[float]]]:
    out = {}
    for method, seeds in per_seed.items():
        out[method] = {k: [float(np.mean([s[k] for s in seeds])), float(np.std([s[k] for s in seeds]))]
                       for k in seeds[0]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/shape_exp"))
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=25)
    ap.add_argument("--steps", type=int, default=3000, help="training steps per model")
    ap.add_argument("--chunk-steps", type=int, default=0, help="train at most this many more steps per run and call")
    ap.add_argument("--seeds", type=str, default="0,1,2")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--latent-dim", type=int, default=100)
    ap.add_argument("--base-channels", type=int, default=16)
    ap.add_argument("--T", type=str, default="2,15,20", help="comma-separated T values for LSD-EBM runs")
    ap.add_argument("--refine-steps", type=str, default="0,1,T",
                    help="LSD-EBM refinement steps t ('T' = from T; 0 = its autoencoder alone, no chain)")
    ap.add_argument("--langevin-noise", type=float, default=1.0, help="LSD-EBM Langevin noise scale (ref. code: 0.01)")
    ap.add_argument("--langevin-steps", type=int, default=20, help="LSD-EBM Langevin steps K per reverse step")
    ap.add_argument("--eval-langevin-noise", type=str, default="",
                    help="also refine with these Langevin noise scales (comma-separated, e.g. 0.01), same K")
    ap.add_argument("--lebm-posterior-steps", type=int, default=5)
    ap.add_argument("--lebm-prior-steps", type=int, default=30)
    ap.add_argument("--lebm-posterior-step-size", type=float, default=0.05)
    ap.add_argument("--lebm-eval-posterior-steps", type=str, default="",
                    help="also refine with LEBM posterior chains of these lengths K1 (comma-separated, e.g. 60)")
    ap.add_argument("--lebm-steps", type=int, default=0, help="LEBM training steps (0: --steps)")
    ap.add_argument("--two-stage", action="store_true",
                    help="LSD-EBM: train one joint run (T=--joint-T) per seed, then the energy of every T in --T on "
                         "its fixed autoencoder (train.freeze_autoencoder)")
    ap.add_argument("--joint-T", type=int, default=20)
    ap.add_argument("--vae-energy-T", type=int, default=0,
                    help="also train an LSD-EBM energy with this T on each seed's fixed VAE autoencoder (0: no)")
    ap.add_argument("--vae-energy-steps", type=int, default=0, help="its training steps (0: --energy-steps)")
    ap.add_argument("--energy-steps", type=int, default=0, help="two-stage energy steps (0: --steps)")
    ap.add_argument("--ref-T", type=int, default=0, help="also train LSD-EBM with the reference recipe at this T (0: no)")
    ap.add_argument("--ref-steps", type=int, default=0, help="its training steps (0: --steps; the reference ran ~22k)")
    ap.add_argument("--ref-lr", type=float, default=2e-5, help="its learning rate (reference: 2e-5)")
    ap.add_argument("--controls", action="store_true",
                    help="LSD-EBM energy off, round trip and direction; the VAE scored by a posterior sample")
    ap.add_argument("--thickness", type=int, default=6, help="slab thickness of the coarse inputs (32^3: use 3)")
    ap.add_argument("--models", type=str, default="vae,lebm,lsd-ebm")
    ap.add_argument("--train-only", action="store_true")
    args = ap.parse_args()

    import torch

    from latentmed.data.formats import write_nifti
    from latentmed.data.phantoms.spine3d import generate_spine3d
    from latentmed.data.phantoms.spine3d import PARTS
    from latentmed.shape.evaluate import constant_mask, load_pairs, load_part_cubes, paired_test, posterior_region, \
        refine_cubes, score_cases
    from latentmed.shape.models import load_shape_model
    from latentmed.config import load_config
    from latentmed.shape.training import ShapeRunConfig, train_shape_model
    from latentmed.shape.volumes import list_masks, load_cube, load_mask, simulate_thick_slices

    out = args.out
    train_dir, test_dir, coarse_dir = out / "data/train", out / "data/test", out / "data/coarse"
    if not (train_dir / "labels.csv").is_file():
        generate_spine3d(train_dir, args.n_train, args.size, seed=1)
    if not (test_dir / "labels.csv").is_file():
        generate_spine3d(test_dir, args.n_test, args.size, seed=2)
    for i, f in enumerate(list_masks(test_dir)):
        if not (coarse_dir / f.name).is_file():
            write_nifti(simulate_thick_slices(load_mask(f)[0], args.thickness, seed=i), coarse_dir / f.name, dtype=np.uint8)

    seeds = [int(s) for s in args.seeds.split(",") if s]
    specs = _run_specs(args)
    common = [f"train.steps={args.steps}", f"train.batch_size={args.batch_size}", f"train.lr={args.lr}",
              "train.checkpoint_every=50", "train.progress=false", f"model.latent_dim={args.latent_dim}",
              f"model.base_channels={args.base_channels}"]

    # --- training: one run per (model, seed), resumable, optionally in chunks ----------------------
    all_done = True
    joint_label = f"LSD-EBM T={args.joint_T}"
    for label, kind, extra, steps in specs:
        for seed in seeds:
            run_dir = _run_dir(out, label, seed)
            done = _done_steps(run_dir)
            if done >= steps and (run_dir / "model" / "config.json").is_file():
                continue
            sources = {"{joint}": _run_dir(out, joint_label, seed), "{VAE}": _run_dir(out, "VAE", seed)}
            if any(key in e and _done_steps(d) < args.steps for key, d in sources.items() for e in extra):
                all_done = False  # the autoencoder it starts from is not trained yet
                continue
            extra_seed = list(extra)
            for key, d in sources.items():
                extra_seed = [e.replace(key, str(d)) for e in extra_seed]
            target = min(steps, done + args.chunk_steps) if args.chunk_steps else steps
            cfg = load_config(ShapeRunConfig, None, common + extra_seed + [f"train.seed={seed}", f"train.steps={target}"])
            start = time.perf_counter()
            result = train_shape_model(kind, train_dir, run_dir, cfg, image_size=args.size)
            seconds = time.perf_counter() - start
            (run_dir / "eval.json").unlink(missing_ok=True)  # the stored evaluation was of the earlier weights
            timing = {"seconds": seconds, "from_step": done, "to_step": result.step,
                      "seconds_per_step": seconds / max(1, result.step - done),
                      "torch_threads": torch.get_num_threads(),
                      "final_log": _last_log(run_dir)}
            with open(run_dir / "timing.jsonl", "a") as fh:
                fh.write(json.dumps(timing) + "\n")
            print(label, f"seed{seed}", json.dumps(timing), flush=True)
            all_done &= result.step >= steps
    if args.train_only or not all_done:
        print("training not finished (or --train-only): run again to continue", flush=True)
        return

    # --- evaluation ------------------------------------------------------------------------------
    names, coarse, truth = load_pairs(coarse_dir, test_dir, args.size)
    parts = load_part_cubes(test_dir, names, args.size)
    region = posterior_region(parts)
    train_masks = np.stack([load_cube(f, args.size) for f in list_masks(train_dir)])
    floor = np.broadcast_to(constant_mask(train_masks), truth.shape)

    def both(pred: np.ndarray) -> dict[str, dict[str, list[float]]]:
        return {"overall": {k: v.tolist() for k, v in score_cases(truth, pred).items()},
                "posterior": {k: v.tolist() for k, v in score_cases(truth, pred, region).items()}}

    per_case: dict[str, list[dict]] = {"input": [both(coarse)], "floor (constant mask)": [both(floor)]}
    figures: dict[str, np.ndarray] = {"input": coarse[:N_FIGURES]}
    seconds: dict[str, list[float]] = {}
    directions: dict[str, list[dict]] = {}
    for label, _, _, _ in specs:
        for seed in seeds:
            run_dir = _run_dir(out, label, seed)
            eval_file = run_dir / "eval.json"
            if eval_file.is_file():
                stored = json.loads(eval_file.read_text())
            else:
                model = load_shape_model(run_dir)
                stored, previews = {}, {}
                for method, t in _refine_variants(label, model, args):
                    pred, sec = refine_cubes(model, coarse, steps=t, batch_size=5, seed=seed)
                    stored[method] = {**both(pred), "seconds_per_sample": sec}
                    previews[method] = pred[:N_FIGURES]
                    if label == "LEBM":  # longer posterior chains at test time than the 5 it trained with
                        trained_k = model.config.posterior_steps
                        for k in [int(v) for v in args.lebm_eval_posterior_steps.split(",") if v]:
                            model.config.posterior_steps = k
                            pred, sec = refine_cubes(model, coarse, batch_size=5, seed=seed)
                            stored[f"LEBM K1={k}"] = {**both(pred), "seconds_per_sample": sec}
                        model.config.posterior_steps = trained_k
                    trained_noise = getattr(model.config, "langevin_noise", None)
                    for noise in [float(v) for v in args.eval_langevin_noise.split(",") if v]:
                        if trained_noise is None or not t:
                            continue
                        model.config.langevin_noise = noise
                        pred, sec = refine_cubes(model, coarse, steps=t, batch_size=5, seed=seed)
                        stored[f"{method} noise={noise:g}"] = {**both(pred), "seconds_per_sample": sec}
                        model.config.langevin_noise = trained_noise
                inference_T = getattr(model.config, "inference_T", None)
                if inference_T is not None and inference_T != model.config.num_steps:
                    # the reference evaluates on a 30-step schedule; also refine on the trained one
                    T, kept = model.config.num_steps, model.config.inference_T
                    model.config.inference_T = None
                    pred, sec = refine_cubes(model, coarse, steps=T, batch_size=5, seed=seed)
                    stored[f"{label} t={T} on its trained {T}-step schedule"] = {**both(pred), "seconds_per_sample": sec}
                    model.config.inference_T = kept
                np.savez_compressed(run_dir / "preview.npz", **previews)
                if args.controls:
                    stored.update(_controls(label, model, coarse, truth, both, seed))
                if label == "VAE":  # the ceiling: the autoencoder on the clean masks
                    pred, _ = refine_cubes(model, truth, batch_size=5, seed=seed)
                    stored["ceiling (VAE on clean masks)"] = {**both(pred), "seconds_per_sample": 0.0}
                if label == joint_label:  # its own autoencoder (KL 0); two-stage runs share it
                    pred, _ = refine_cubes(model, truth, steps=0, batch_size=5, seed=seed)
                    stored[f"{label} autoencoder on clean masks"] = {**both(pred), "seconds_per_sample": 0.0}
                eval_file.write_text(json.dumps(stored))
            if "_direction" in stored:
                directions.setdefault(label, []).append(stored["_direction"])
            for method, res in stored.items():
                if method.startswith("_"):
                    continue
                per_case.setdefault(method, []).append({k: res[k] for k in ("overall", "posterior")})
                seconds.setdefault(method, []).append(res["seconds_per_sample"])
            if seed == seeds[0] and (run_dir / "preview.npz").is_file():
                with np.load(run_dir / "preview.npz") as z:
                    figures.update({k: z[k] for k in z.files})

    summary = {}
    for scope in ("overall", "posterior"):
        # HD95 is inf where a prediction is empty (posterior elements erased): summarised by the median
        per_seed = {m: [{k: float(np.median(v) if k == "hausdorff95" else np.mean(v)) for k, v in r[scope].items()}
                        for r in runs] for m, runs in per_case.items()}
        summary[scope] = _summarise(per_seed)
    d = {m: s["dice"][0] for m, s in summary["overall"].items()}
    check = {"floor": d["floor (constant mask)"], "input": d["input"],
             "ceiling": d.get("ceiling (VAE on clean masks)", float("nan"))}
    check["holds"] = bool(check["floor"] + 0.1 < check["input"] < check["ceiling"] - 0.1)
    tests = {}
    for method in per_case:  # does the chain beat its own autoencoder (the same run at t=0)?
        base = method.split(" t=")[0] + " t=0"
        if " t=" in method and method.split(" t=")[1].isdigit() and method != base and base in per_case:
            a_case = np.mean([r["overall"]["dice"] for r in per_case[method]], 0)
            b_case = np.mean([r["overall"]["dice"] for r in per_case[base]], 0)
            tests[f"{method} vs {base}, overall Dice"] = {"over_cases": paired_test(a_case, b_case),
                                                          "over_seeds": None}
    for method in per_case:
        control = any(w in method for w in ("clean masks", "energy off", "round trip"))
        if method.startswith("LSD-EBM") and not control and "VAE" in per_case:
            for scope in ("overall", "posterior"):
                a_seed = [np.mean(r[scope]["dice"]) for r in per_case[method]]
                b_seed = [np.mean(r[scope]["dice"]) for r in per_case["VAE"]]
                a_case = np.mean([r[scope]["dice"] for r in per_case[method]], 0)
                b_case = np.mean([r[scope]["dice"] for r in per_case["VAE"]], 0)
                tests[f"{method} vs VAE, {scope} Dice"] = {
                    "over_seeds": paired_test(a_seed, b_seed) if len(seeds) > 1 else None,
                    "over_cases": paired_test(a_case, b_case)}

    cols = ("dice", "precision", "sensitivity", "volumetric_similarity", "hausdorff95", "nmi", "cohen_kappa")
    heads = ("Dice", "Precision", "Recall", "VS", "HD95", "NMI", "Kappa")
    lines = []
    for scope in ("overall", "posterior"):
        lines += [f"\n**{scope}** ({len(seeds)} seed(s): mean ± sd over seeds of the per-seed case mean, "
                  f"HD95 (voxels): case median; reference rows are deterministic)\n",
                  "| Method | " + " | ".join(heads) + " | s/sample |",
                  "|" + "---|" * (len(cols) + 2)]
        for method, stats in summary[scope].items():
            cells = [f"{stats[k][0]:.3f} ± {stats[k][1]:.3f}" for k in cols]
            sec = np.mean(seconds.get(method, [0.0]))
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {sec:.3f} |")
    lines.append(f"\nCheck floor + 0.1 < input < ceiling - 0.1 (overall Dice): {check['floor']:.3f} + 0.1 < "
                 f"{check['input']:.3f} < {check['ceiling']:.3f} - 0.1: {'holds' if check['holds'] else 'FAILS'}")
    for name, res in tests.items():
        oc = res["over_cases"]
        lines.append(f"- {name}: mean difference {oc['mean_difference']:+.4f} over {oc['n']} cases, paired t p = "
                     f"{oc['t_pvalue']:.3g}, Wilcoxon p = {oc['wilcoxon_pvalue']:.3g}"
                     + (f"; over seeds: t p = {res['over_seeds']['t_pvalue']:.3g}" if res["over_seeds"] else ""))
    if directions:
        lines += ["", "Direction control (per seed: mean over cases; cosine of the chain's move with "
                  "mean(clean) - mean(coarse), and the move's length over that distance):"]
        for label, ds in directions.items():
            cos = [float(np.mean(d["cosine"])) for d in ds]
            ratio = [float(np.mean(d["move_ratio"])) for d in ds]
            lines.append(f"- {label}: cosine {np.mean(cos):.3f} ± {np.std(cos):.3f}, move/distance "
                         f"{np.mean(ratio):.3f} ± {np.std(ratio):.3f}")
    table = "\n".join(lines)
    from latentmed.viz.shape import save_refinement_figure

    # rows: the input, VAE, LEBM, and each LSD-EBM at t=1 and t=T (t=0 is its autoencoder, noise= variants alike)
    def _shown(k: str) -> bool:  # t=1 and t=T of each LSD-EBM, no control rows
        if any(w in k for w in ("noise=", "energy off", "round trip", "sampled")):
            return False
        if " t=" not in k:
            return True
        t, T = k.split(" t=")[1], k.split(" T=")[1].split()[0] if " T=" in k else ""
        return t in ("1", T)
    shown = {k: v for k, v in figures.items() if _shown(k)}
    for i in range(min(N_FIGURES, len(names))):  # seed's first run; mid-slices through the centre of mass
        save_refinement_figure(truth[i], {k: v[i] for k, v in shown.items()}, out / f"case_{i:03d}.png",
                               title=f"{names[i]} (seed {seeds[0]}): part colours, dark = missed, red = false positive",
                               parts=parts[i], part_names=PARTS)
    (out / "table.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps({
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "n_test": len(names),
        "summary": summary, "check": check, "paired_tests": tests,
        "seconds_per_sample": {m: float(np.mean(v)) for m, v in seconds.items()},
        "torch_threads": torch.get_num_threads()}, indent=2))
    print(table)


if __name__ == "__main__":
    main()
