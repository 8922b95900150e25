"""DiNO-Diffusion on the chest2d phantom, end to end on CPU (tiny models), in the paper's data regime.

The paper's diffusion model saw 868k unlabelled images disjoint from the classifier's data. Here
(issue 16), four disjoint phantom draws (own seeds, ``--variant`` ``varied`` by default):

- ``data/unlabelled`` (``--n-unlabelled``, seed 10): trains the VAE, fits the conditioner
  (PCA tokens with ``--pca-components`` components, or the pool standardisation of a ViT's
  tokens) and trains the diffusion model;
- ``data/unlabelled_val`` (``--n-val``, seed 11): the pool's validation split, used only for
  reconstruction-FID checkpoint selection;
- ``data/labelled`` (``--n-labelled``, seed 1): the classifier's pool, from which the nested
  label-balanced subsets are drawn;
- ``data/test`` (``--n-test``, seed 2): final numbers only (``augment_eval`` refuses a run whose
  training or selection used it).

phantoms -> conditioner -> VAE -> token cache -> conditioned UNet (FID selection on the pool's
validation split; ``--recipe paper``: lr 1e-4 after 1000 warm-up steps, augmentation, discrete
times) -> grids -> rows (``seeds``: real only, classical, oracle, reconstruction, interpolation,
shuffled-token null, each at every ``--ratios``, over ``--folds``-fold CV or ``--seeds`` subsets,
the small CNN or ``--arch densenet121 --early-stopping``) -> ``variation`` (distance of each
synthetic image to its source vs the source's nearest other real, label agreement) -> ``compare``
(agreement vs variation of several runs, e.g. the PCA bottleneck sweep). Stages are resumable
(``--stage data|conditioner|vae|ldm|grids|seeds|variation|eval|compare``).

    OMP_NUM_THREADS=1 python experiments/dino_augmentation.py --out runs/dino_aug --conditioner pca
    OMP_NUM_THREADS=1 python experiments/dino_augmentation.py --out runs/dino_aug_vit --conditioner tiny  # random ViT
    # the full protocol and sweep of issue 29: experiments/dino_diffusion.md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/dino_aug"))
    p.add_argument("--n-unlabelled", type=int, default=4000)
    p.add_argument("--n-val", type=int, default=200)
    p.add_argument("--n-labelled", type=int, default=600)
    p.add_argument("--n-test", type=int, default=300)
    p.add_argument("--variant", default="varied", help="chest2d variant (classic: no headroom, see chest2d_headroom.py)")
    p.add_argument("--phantom-size", type=int, default=64)
    p.add_argument("--size", type=int, default=32, help="model image size (phantoms are resized)")
    p.add_argument("--vae-channels", default="16,32,32")
    p.add_argument("--unet-channels", default="32,64")
    p.add_argument("--vae-steps", type=int, default=600)
    p.add_argument("--ldm-steps", type=int, default=800)
    p.add_argument("--conditioner", default="pca",
                   help="pca (fitted on the unlabelled pool), a local ViT folder, or tiny / tiny-vit (RANDOM ViTs)")
    p.add_argument("--pca-width", type=int, default=64)
    p.add_argument("--pca-components", type=int, default=None,
                   help="PCA bottleneck: principal components behind the --pca-width token (default: the width)")
    p.add_argument("--pca-tokens", type=int, default=1, help="PCA tokens of width --pca-width (the bottleneck "
                   "is --pca-components; more tokens spread it over more cross-attention keys)")
    p.add_argument("--recipe", default="", help="LDM training recipe: '' (issue 16's: lr 5e-4, warm-up 50) or paper")
    p.add_argument("--vae-from", type=Path, default=None, help="reuse this VAE run (stage vae skipped), e.g. to "
                   "sweep the conditioner with one VAE")
    p.add_argument("--no-standardise", action="store_true", help="keep a ViT's raw tokens (no pool standardisation)")
    p.add_argument("--subsets", "--seed-subsets", dest="subsets", default="10,20,50", help="real n (nested)")
    p.add_argument("--ratios", "--seed-ratio", dest="ratios", default="5",
                   help="extra images per real image, e.g. 1,5,10,50 (the paper)")
    p.add_argument("--folds", type=int, default=0, help="k-fold CV of each subset (the paper: 5); 0: --seeds subsets")
    p.add_argument("--seeds", type=int, default=5, help="subset seeds when --folds 0 (issue 16)")
    p.add_argument("--arch", default="small", help="classifier: small (CPU CNN) or densenet121 (MONAI)")
    p.add_argument("--early-stopping", action="store_true",
                   help="classifier: LR on plateau + early stopping on a validation split (--epochs = maximum)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--min-steps", type=int, default=150)
    p.add_argument("--strategy", default="reconstruction", help="stage eval: reconstruction | interpolation")
    p.add_argument("--sample-steps", type=int, default=20)
    p.add_argument("--tag", default="", help="stage seeds writes OUT/seeds<TAG>/ (several row sets per run)")
    p.add_argument("--variation-n", type=int, default=200, help="stage variation: real images (one synthetic each)")
    p.add_argument("--compare", default="", help="stage compare: comma-separated run folders with variation/")
    p.add_argument("--stage", default="all",
                   help="all (= data conditioner vae ldm grids seeds variation) | data | conditioner | vae | ldm | "
                        "grids | seeds (the rows) | variation | eval (the CLI's k-fold table) | compare")
    return p.parse_args(argv)


def main(argv=None) -> None:
    import torch

    a = parse_args(argv)
    out, d = a.out, regime_dirs(a.out)
    order = ["data", "conditioner", "vae", "ldm", "grids", "seeds", "variation", "eval", "compare"]
    stages = order[:7] if a.stage == "all" else [a.stage]
    if a.stage not in order + ["all"]:
        raise SystemExit(f"unknown --stage {a.stage!r}; expected all or one of {', '.join(order)}")
    if a.vae_from is not None and "vae" in stages:
        stages.remove("vae")  # reused
    times = {}
    for stage in stages:
        t = time.time()
        STAGES[stage](a, out, d)
        times[stage] = time.time() - t
    print("seconds:", {k: round(v, 1) for k, v in times.items()}, "threads:", torch.get_num_threads())


def vae_dir(a) -> Path:
    return a.vae_from or a.out / "vae_run"


def run_data(a, out: Path, d: dict[str, Path]) -> None:
    from latentmed.data.phantoms.chest2d import generate_chest2d

    for key, n, seed in (("unlabelled", a.n_unlabelled, 10), ("unlabelled_val", a.n_val, 11),
                         ("labelled", a.n_labelled, 1), ("test", a.n_test, 2)):
        if not (d[key] / "labels.csv").is_file():
            generate_chest2d(d[key], n, a.phantom_size, seed=seed, variant=a.variant)


def run_conditioner(a, out: Path, d: dict[str, Path]) -> None:
    """PCA tokens (``--pca-components`` behind ``--pca-tokens`` tokens of ``--pca-width``) or a ViT, on the pool."""
    from latentmed.ldm import PCAConditioner, load_conditioner

    images, _ = load_split(a, d, "unlabelled", labels=False)
    if a.conditioner == "pca":
        cond = PCAConditioner.fit(images, width=a.pca_width, num_tokens=a.pca_tokens,
                                  n_components=a.pca_components, image_size=min(a.size, 32))
    else:
        cond = load_conditioner(a.conditioner)
        if not a.no_standardise:
            cond.fit_standardisation(images)
    cond.save_pretrained(out / "conditioner")


def run_vae(a, out: Path, d: dict[str, Path]) -> None:
    from latentmed.ldm.training import (LDMDataConfig, VAEModelConfig, VAEObjectiveConfig, VAERunConfig,
                                        VAETrainConfig, train_vae)

    train_vae(VAERunConfig(
        model=VAEModelConfig(block_out_channels=tuple(int(c) for c in a.vae_channels.split(","))),
        objective=VAEObjectiveConfig(kl_weight=1e-6),
        train=VAETrainConfig(steps=a.vae_steps, batch_size=16, lr=1e-3, ema_decay=0.99, checkpoint_every=200,
                             log_every=50),
        data=LDMDataConfig(path=str(d["unlabelled"]), size=a.size)), vae_dir(a))


def run_ldm(a, out: Path, d: dict[str, Path]) -> None:
    """The token cache, then the UNet (issue 16's settings, or ``--recipe``) with FID selection on the val split."""
    from latentmed.ldm import load_conditioner
    from latentmed.ldm.data import open_ldm_images
    from latentmed.ldm.training import (FIDSelectionConfig, LDMDataConfig, LDMRunConfig, LDMTrainConfig,
                                        LDMUNetConfig, apply_recipe, embed_dataset, save_embeddings, train_ldm)

    cond = load_conditioner(out / "conditioner")
    ds = open_ldm_images(d["unlabelled"], size=a.size)
    emb = out / "embeddings.safetensors"
    save_embeddings(emb, embed_dataset(cond, ds), cond, ds.ids)
    cfg = LDMRunConfig(
        model=LDMUNetConfig(block_out_channels=tuple(int(c) for c in a.unet_channels.split(","))),
        train=LDMTrainConfig(steps=a.ldm_steps, batch_size=32, lr=5e-4, ema_decay=0.995, warmup_steps=50,
                             checkpoint_every=500, log_every=50, eval_every=max(1, a.ldm_steps // 3)),
        data=LDMDataConfig(path=str(d["unlabelled"]), size=a.size),
        eval=FIDSelectionConfig(heldout=str(d["unlabelled_val"]), images=64, steps=10))
    if a.recipe:
        cfg = apply_recipe(cfg, a.recipe)
    # with augmentation the cached tokens are the un-augmented image's (train_ldm's docstring)
    train_ldm(cfg, out / "ldm", vae=vae_dir(a), conditioner=cond, embeddings=emb)


def run_grids(a, out: Path, d: dict[str, Path]) -> None:
    from latentmed.ldm import load_ldm
    from latentmed.ldm.synthesis import interpolation_grid, reconstruction_grid

    ldm = load_ldm(out / "ldm")
    x = load_split(a, d, "labelled", labels=False)[0][:12]  # labelled pool: the test set stays unseen
    reconstruction_grid(ldm, x[:6], out / "grids" / "reconstruction.png", variations=4, steps=a.sample_steps)
    interpolation_grid(ldm, x[6:9], x[9:12], out / "grids" / "interpolation.png", steps=a.sample_steps)


def run_eval(a, out: Path, d: dict[str, Path]) -> None:
    """The CLI's table (``latentmed ldm augment-eval``): real, real+syn, syn-only at each ratio, k folds."""
    from latentmed.data.phantoms.chest2d import LABELS
    from latentmed.ldm import load_ldm
    from latentmed.ldm.augment import SynthesisSpec, augment_eval, write_augment_report

    res = augment_eval(load_ldm(out / "ldm"), d["labelled"], d["test"], LABELS,
                       protocol(a, folds=a.folds or 5, syn_only=True), classifier=classifier(a),
                       synthesis=SynthesisSpec(a.strategy, a.sample_steps), progress=print)
    write_augment_report(res, out / "report")
    print((out / "report" / "table.md").read_text())


def run_compare(a, out: Path, d: dict[str, Path]) -> None:
    compare_variation([Path(r) for r in a.compare.split(",") if r], out)


def protocol(a, **changes):
    """The rows' protocol from the options (``changes`` override fields)."""
    from dataclasses import replace

    from latentmed.ldm.augment import AugmentProtocol

    p = AugmentProtocol(subsets=[int(s) for s in a.subsets.split(",")], ratios=[int(r) for r in a.ratios.split(",")],
                        folds=a.folds, seeds=a.seeds)
    return replace(p, **changes)


def classifier(a):
    from latentmed.ldm.augment import ClassifierSpec

    return ClassifierSpec(arch=a.arch, size=a.size, epochs=a.epochs, min_steps=a.min_steps,
                          early_stopping=a.early_stopping)


def load_split(a, d: dict[str, Path], key: str, labels: bool = True):
    """``(images, labels)`` of one of the four draws at the model size (``labels=False``: ``None``)."""
    from latentmed.data.phantoms.chest2d import LABELS
    from latentmed.ldm.data import folder_labels, open_ldm_images

    ds = open_ldm_images(d[key], size=a.size)
    return ds.stack(), folder_labels(d[key], ds.ids, LABELS) if labels else None


def run_rows(a, out: Path, d: dict[str, Path]) -> dict:
    """The augmentation rows (issue 16, at the paper's protocol with issue 29's options): real only; classical
    augmentation; oracle (fresh phantoms with the source's labels, the ceiling); reconstruction and
    interpolation from the run's conditioner; shuffled tokens (the null); each at every ratio; the label
    read-back gate; memorisation against the unlabelled pool."""
    import numpy as np
    import torch.nn.functional as F

    from chest2d_headroom import render_set
    from latentmed.io import write_json, write_text
    from latentmed.ldm import load_ldm
    from latentmed.ldm.augment import (augment_rows, augment_table, check_test_unseen, classical_generator,
                                       ldm_generator, memorisation_check, shuffled_token_generator)

    ldm = load_ldm(out / "ldm")
    check_test_unseen(ldm, d["test"])
    (x_pool, y_pool), (x_test, y_test) = load_split(a, d, "labelled"), load_split(a, d, "test")

    def oracle(x, y, n, seed):
        ys = np.asarray(y)[np.arange(n) % len(y)]
        xo, yo = render_set(n, 3, a.variant, a.phantom_size, ys, oracle_key=(seed,))
        return F.interpolate(xo, size=(a.size, a.size), mode="area"), yo

    name = ldm.conditioner.label
    gens = {"classical augmentation": classical_generator(), "oracle (fresh phantoms)": oracle,
            f"reconstruction [{name}]": ldm_generator(ldm, "reconstruction", a.sample_steps),
            f"interpolation [{name}]": ldm_generator(ldm, "interpolation", a.sample_steps),
            f"shuffled tokens (null) [{name}]": shuffled_token_generator(ldm, a.sample_steps)}
    res = augment_rows(x_pool, y_pool, x_test, y_test, gens, protocol(a), classifier(a),
                       progress=lambda m: print(m, flush=True))
    pool, _ = load_split(a, d, "unlabelled", labels=False)
    mem = memorisation_check(res.kept[f"reconstruction [{name}]"][0], pool, x_test)
    res.extra["memorisation_vs_unlabelled_pool"] = {k: v for k, v in mem.items() if not isinstance(v, list)}
    res.extra["conditioner"] = name
    rows = out / f"seeds{a.tag}"
    write_json(rows / "results.json", res.to_dict())
    write_text(rows / "table.md", f"Conditioner: {name}\n\n" + augment_table(res))
    print((rows / "table.md").read_text())
    return res.to_dict()


def run_variation(a, out: Path, d: dict[str, Path]) -> dict:
    """Per synthetic image: distance to its own source vs the source's nearest other real image (pixels and
    the gate's features) and the labels the gate reads back, for reconstruction and interpolation from
    ``--variation-n`` labelled images; ``variation/variation.json`` and the agreement-vs-variation plot."""
    from latentmed.io import write_json
    from latentmed.ldm import load_ldm
    from latentmed.ldm.synthesis import nested_subsets
    from latentmed.ldm.augment import split_xy
    from latentmed.ldm.variation import ldm_variation, save_variation_plot

    ldm = load_ldm(out / "ldm")
    (x_pool, y_pool), clf = load_split(a, d, "labelled"), classifier(a)
    gate = clf.fit(x_pool, y_pool, split_xy(x_pool, y_pool, clf), seed=0)  # the rows' gate
    idx = nested_subsets(y_pool, [a.variation_n], 0)[a.variation_n]
    results = {s: ldm_variation(ldm, x_pool[idx], y_pool[idx], gate, s, steps=a.sample_steps)
               for s in ("reconstruction", "interpolation")}
    summary = {"conditioner": ldm.conditioner.label, **{s: r.to_dict() for s, r in results.items()}}
    write_json(out / "variation" / "variation.json", summary)
    for space in ("features", "pixels"):
        save_variation_plot(results, out / "variation" / f"agreement_vs_variation_{space}.png", space=space)
    print({s: r.summary() for s, r in results.items()})
    return summary


def compare_variation(runs: list[Path], out: Path) -> None:
    """One agreement-vs-variation plot per feature space over several runs' ``variation/variation.json``
    (reconstructions; names: the conditioners), and a Markdown table of the medians."""
    from latentmed.io import read_json, write_text
    from latentmed.ldm.variation import VariationResult, save_variation_plot

    res = {}
    for run in runs:
        v = read_json(run / "variation" / "variation.json")
        res[f"{v['conditioner']} ({run.name})"] = VariationResult.from_dict(v["reconstruction"])
    for space in ("features", "pixels"):
        save_variation_plot(res, out / f"compare_variation_{space}.png", space=space)
    md = ["| conditioner | feature variation (median) | pixel variation (median) | labels read back |",
          "|---|---|---|---|"]
    for k, r in res.items():
        m = r.summary()
        md.append(f"| {k} | {m['feature_variation_median']:.3f} | {m['pixel_variation_median']:.3f} | "
                  f"{m['agreement_mean']:.3f} |")
    write_text(out / "compare_variation.md", "\n".join(md) + "\n")
    print("\n".join(md))


STAGES = {"data": run_data, "conditioner": run_conditioner, "vae": run_vae, "ldm": run_ldm, "grids": run_grids,
          "seeds": run_rows, "variation": run_variation, "eval": run_eval, "compare": run_compare}


def regime_dirs(out: Path) -> dict[str, Path]:
    """The four disjoint draws of the data regime (see the module docstring)."""
    return {k: out / "data" / k for k in ("unlabelled", "unlabelled_val", "labelled", "test")}


if __name__ == "__main__":
    main()
