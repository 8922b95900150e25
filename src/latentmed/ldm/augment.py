"""The augmentation experiment of DiNO-Diffusion (Table 1) and a memorisation check.

Protocol (:func:`augment_eval`): from a pool of real training images take label-balanced nested
subsets (data regimes); synthesise ``max(ratios)`` images per real image once per regime; split
each regime into k folds; in fold f a multi-label classifier is trained on the other folds'
real images (``real``), on those plus ``r`` synthetic images per real image whose source(s) are
in the training folds (``real+syn 1:r``), or on the synthetic images alone (``syn-only 1:r``),
and tested on a held-out real test set. Reported: macro AUC mean ± std over folds and a paired
t-test (``scipy.stats.ttest_rel``) against ``real`` across the same folds.

Memorisation (:func:`memorisation_check`, not in the paper): distance of each synthetic image to
its nearest training image against the distance of held-out real images to their nearest
training image, in a feature space; synthetic distances far below the real-to-real ones mean
the model copies its training data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from latentmed.errors import LatentmedError, expect
from latentmed.train.classifier import fit_classifier, predict_logits


def train_classifier(x: torch.Tensor, y: np.ndarray, *, arch: str = "small", epochs: int = 15, batch_size: int = 32,
                     lr: float = 2e-3, seed: int = 0, min_steps: int = 150) -> nn.Module:
    """The experiment's classifier (:func:`latentmed.train.classifier.fit_classifier`): multi-label BCE on
    ``x [N, C, H, W]`` (random flips off: laterality matters), Adam with a cosine learning rate, at least
    ``epochs`` shuffled epochs and ``min_steps`` steps."""
    return fit_classifier(x, np.asarray(y), arch=arch, epochs=epochs, min_steps=min_steps, batch_size=batch_size,
                          lr=lr, cosine=True, seed=seed)


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Label probabilities ``[N, L]`` (sigmoid of the logits)."""
    return torch.sigmoid(predict_logits(model, x, batch_size=batch_size)).numpy()


def macro_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Mean over labels of the binary AUC (``latentmed.metrics.classification.auc``)."""
    from latentmed.metrics.classification import auc

    return float(np.mean([auc(y[:, j], scores[:, j]) for j in range(y.shape[1])]))


def paired_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided paired t-test p-value across folds (nan when the differences are constant)."""
    from scipy.stats import ttest_rel

    d = np.asarray(a) - np.asarray(b)
    if len(d) < 2 or np.allclose(d, d[0]):
        return float("nan")
    return float(ttest_rel(a, b).pvalue)


# ---- memorisation ---------------------------------------------------------------------------------------------
def pixel_features(x: torch.Tensor, size: int = 16) -> torch.Tensor:
    """Down-sampled, zero-mean, unit-norm pixels: a simple feature space for near-duplicate search."""
    f = F.interpolate(x.float(), size=(size, size), mode="area").flatten(1)
    f = f - f.mean(1, keepdim=True)
    return f / f.norm(dim=1, keepdim=True).clamp_min(1e-8)


def nearest_distances(query: torch.Tensor, ref: torch.Tensor, exclude_self: bool = False):
    """Euclidean distance of each ``query`` row to its nearest ``ref`` row, and its index."""
    d = torch.cdist(query.double(), ref.double())
    if exclude_self:
        d.fill_diagonal_(float("inf"))
    v, i = d.min(1)
    return v.numpy(), i.numpy()


def memorisation_check(synthetic: torch.Tensor, train: torch.Tensor, heldout: torch.Tensor,
                       features: Callable[[torch.Tensor], torch.Tensor] = pixel_features) -> dict:
    """Nearest-training-image distances of synthetic images vs of held-out real images.

    Returns medians, the 5th percentile of the real-to-real distances, the fraction of synthetic
    images closer to a training image than that percentile (about 0.05 when the model does not
    copy more than real images resemble each other), and the per-image distances and indices.
    """
    expect(len(train) > 0 and len(heldout) > 0 and len(synthetic) > 0,
           "memorisation check needs synthetic, training and held-out images.")
    ft, fs, fh = features(train), features(synthetic), features(heldout)
    ds, i_s = nearest_distances(fs, ft)
    dr, _ = nearest_distances(fh, ft)
    p5 = float(np.percentile(dr, 5))
    return {"median_synthetic_to_train": float(np.median(ds)), "median_heldout_to_train": float(np.median(dr)),
            "p5_heldout_to_train": p5, "fraction_synthetic_below_p5": float(np.mean(ds < p5)),
            "n_synthetic": int(len(ds)), "n_heldout": int(len(dr)), "synthetic_distances": ds.tolist(),
            "synthetic_nearest": i_s.tolist(), "heldout_distances": dr.tolist()}


# ---- the experiment -----------------------------------------------------------------------------------------------
def check_test_unseen(ldm, test_dir: str | os.PathLike) -> None:
    """Error when the run's training data or checkpoint selection used ``test_dir`` (``RUN/ldm.json`` extra)."""
    test = str(Path(test_dir).resolve())
    extra = getattr(ldm.config, "extra", {}) or {}
    for key, what in (("selection_data", "checkpoint selection"), ("train_data", "training")):
        if extra.get(key) and str(Path(extra[key]).resolve()) == test:
            raise LatentmedError(f"the diffusion run's {what} used {test}, the test set of this evaluation; select "
                                 "checkpoints on a validation split of the unlabelled pool (`ldm train --heldout`, "
                                 "eval.heldout) and keep the test set for the final numbers only.")



def augment_eval(ldm, real_dir: str | os.PathLike, test_dir: str | os.PathLike, label_columns: Sequence[str],
                 out_dir: str | os.PathLike, *, subsets: Sequence[int] = (50, 200), ratios: Sequence[int] = (1, 5),
                 folds: int = 5, strategy: str = "reconstruction", steps: int = 20, guidance: float = 1.0,
                 arch: str = "small", classifier_size: int = 32, epochs: int = 15, min_steps: int = 150,
                 seed: int = 0, progress: Callable[[str], None] | None = None) -> dict:
    """Run the protocol of the module docstring; write ``table.md``, ``results.csv``, ``results.json``,
    ``memorisation.json`` and a picture of synthetic images beside their nearest training image.
    ``progress`` receives one line per fold (and turns on the sampling bars)."""
    from sklearn.model_selection import KFold

    from latentmed.io import write_csv, write_json, write_text
    from latentmed.ldm.data import folder_labels, open_ldm_images
    from latentmed.ldm.synthesis import nested_subsets, synthesize
    from latentmed.viz import save_image_grid

    expect(folds >= 2, f"folds must be >= 2, got {folds}.")
    check_test_unseen(ldm, test_dir)
    expect(len(ratios) > 0 and all(r >= 1 for r in ratios), f"ratios must be integers >= 1, got {list(ratios)}.")
    out = Path(out_dir)
    size = ldm.image_size
    ds = open_ldm_images(real_dir, size=size, channels=ldm.config.image_channels)
    test = open_ldm_images(test_dir, size=size, channels=ldm.config.image_channels)
    y_all = folder_labels(real_dir, ds.ids, label_columns)
    y_test = folder_labels(test_dir, test.ids, label_columns)
    for j, c in enumerate(label_columns):
        expect(0 < y_test[:, j].sum() < len(y_test), f"{test_dir}: label {c!r} needs positives and negatives in "
                                                     "the test set for an AUC.")
    x_all = ds.stack()
    x_test = test.stack()
    down = (lambda x: F.interpolate(x, size=(classifier_size,) * 2, mode="area")) if classifier_size != size \
        else (lambda x: x)
    xt_c = down(x_test)
    max_ratio = max(ratios)
    subs = nested_subsets(y_all, sorted(subsets), seed)
    results, table_rows, mem_syn = [], [], []
    for n in sorted(subsets):
        idx = subs[n]
        expect(n >= folds, f"subset {n} is smaller than the number of folds {folds}.")
        # interpolation pairs need both sources in the training folds: make twice as many
        n_syn = n * max_ratio * (2 if strategy == "interpolation" else 1)
        syn, y_syn, parents = synthesize(ldm, x_all[idx], y_all[idx], strategy, n_syn, steps=steps,
                                         guidance=guidance, seed=seed + n, progress=progress is not None)
        mem_syn.append(syn)
        # children of each real image, in generation order (nested ratios)
        src = [set(p[:-1] if strategy == "interpolation" else p) for p in parents]
        scores: dict[str, list[float]] = {}
        kf = KFold(folds, shuffle=True, random_state=seed)
        for f, (tr, _) in enumerate(kf.split(idx)):
            tr_set = set(tr.tolist())
            ok = [k for k, s in enumerate(src) if s <= tr_set]
            settings = {"real": (x_all[idx[tr]], y_all[idx[tr]])}
            for r in sorted(ratios):
                take = ok[: r * len(tr)]
                expect(len(take) == r * len(tr), f"ratio 1:{r} needs {r * len(tr)} synthetic images from the "
                                                 f"training folds but only {len(take)} exist; lower the ratio.")
                xs, ys = syn[take], y_syn[take]
                settings[f"real+syn 1:{r}"] = (torch.cat([x_all[idx[tr]], xs]), np.concatenate([y_all[idx[tr]], ys]))
                settings[f"syn-only 1:{r}"] = (xs, ys)
            for name, (x, y) in settings.items():
                model = train_classifier(down(x), y, arch=arch, epochs=epochs, seed=seed + f, min_steps=min_steps)
                scores.setdefault(name, []).append(macro_auc(y_test, predict(model, xt_c)))
            if progress is not None:
                progress(f"n={n} fold {f + 1}/{folds}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in scores.items()))
        for name, vals in scores.items():
            p = float("nan") if name == "real" else paired_test(vals, scores["real"])
            row = {"subset": n, "setting": name, "auc_mean": float(np.mean(vals)), "auc_std": float(np.std(vals)),
                   "delta_vs_real": float(np.mean(vals) - np.mean(scores["real"])), "p_value": p,
                   "fold_aucs": ";".join(f"{v:.4f}" for v in vals)}
            results.append(row)
            star = "*" if p == p and p < 0.05 else ""
            table_rows.append(f"| {n} | {name} | {row['auc_mean']:.3f} ± {row['auc_std']:.3f} | "
                              f"{row['delta_vs_real']:+.3f}{star} | {'' if p != p else f'{p:.3f}'} |")
    out.mkdir(parents=True, exist_ok=True)
    cond_label = getattr(ldm.conditioner, "label", type(ldm.conditioner).__name__)
    header = (f"# Augmentation ({strategy}, {folds}-fold, classifier {arch} at {classifier_size}px, "
              f"test n={len(y_test)}; labels {', '.join(label_columns)})\n\nConditioner: {cond_label}\n\n"
              "| real n | setting | macro AUC (mean ± std) | Δ vs real | paired t p |\n|---|---|---|---|---|\n")
    write_text(out / "table.md", header + "\n".join(table_rows) + "\n")
    write_csv(out / "results.csv", results)
    # memorisation over the largest regime's synthetic images vs the whole training pool
    syn = mem_syn[-1]
    mem = memorisation_check(syn, x_all, x_test)
    write_json(out / "memorisation.json", mem)
    order = np.argsort(mem["synthetic_distances"])[:8]
    nearest = torch.as_tensor(mem["synthetic_nearest"])[order]
    save_image_grid(torch.cat([syn[order], x_all[nearest]]), out / "memorisation_closest.png", nrow=len(order))
    summary = {"results": results, "memorisation": {k: v for k, v in mem.items() if not isinstance(v, list)},
               "conditioner": cond_label, "strategy": strategy, "folds": folds, "subsets": list(subsets),
               "ratios": list(ratios), "arch": arch}
    write_json(out / "results.json", summary)
    return summary


# ---- the seed protocol: real subsets over seeds, one row per generator -----------------------------------------------
# A generator makes ``n`` extra training images from a real subset: ``gen(x [m, C, H, W], y [m, L], n, seed)
# -> (x_new [n, C, H, W], y_new [n, L])``, labels inherited from the source images.
Generator = Callable[[torch.Tensor, np.ndarray, int, int], tuple]


def ldm_generator(ldm, strategy: str = "reconstruction", steps: int = 20, guidance: float = 1.0) -> Generator:
    """Synthetic images from the run's tokens (:func:`latentmed.ldm.synthesis.synthesize`)."""
    from latentmed.ldm.synthesis import synthesize

    def gen(x, y, n, seed):
        syn, y_syn, _ = synthesize(ldm, x, y, strategy, n, steps=steps, guidance=guidance, seed=seed)
        return syn, y_syn

    return gen


def shuffled_token_generator(ldm, steps: int = 20, guidance: float = 1.0) -> Generator:
    """The null: reconstructions from ANOTHER image's tokens (a seeded cyclic derangement: image
    ``sigma[i]`` gets the tokens of ``sigma[i+1]``), labelled with the source's labels. It adds images
    of the right look but labels the tokens do not carry; a conditioner that helps must beat it."""
    from latentmed.ldm.synthesis import synthesize

    def gen(x, y, n, seed):
        sigma = np.random.default_rng(seed).permutation(len(x))
        perm = np.empty_like(sigma)
        perm[sigma] = np.roll(sigma, -1)
        syn, y_syn, _ = synthesize(ldm, x[torch.as_tensor(perm)], y, "reconstruction", n, steps=steps,
                                   guidance=guidance, seed=seed)
        return syn, y_syn

    return gen


def classical_generator(max_rotation: float = 8.0, max_shift: float = 0.05, scale: tuple = (0.92, 1.08),
                        gamma: float = 0.2) -> Generator:
    """Classical augmentation: random small rotation, shift, zoom and gamma (no flips: laterality is a label)."""

    def gen(x, y, n, seed):
        g = torch.Generator().manual_seed(seed)
        src = torch.arange(n) % len(x)
        u = lambda *s: torch.rand(*s, generator=g) * 2 - 1  # noqa: E731
        th = torch.deg2rad(max_rotation * u(n))
        s = scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=g)
        cos, sin = torch.cos(th) / s, torch.sin(th) / s
        theta = torch.stack([torch.stack([cos, -sin, max_shift * u(n)], 1),
                             torch.stack([sin, cos, max_shift * u(n)], 1)], 1)
        xs = x[src].float()
        grid = F.affine_grid(theta, list(xs.shape), align_corners=False)
        out = F.grid_sample(xs, grid, padding_mode="border", align_corners=False)
        gam = torch.exp(gamma * u(n)).view(-1, 1, 1, 1)
        out = ((out.clamp(-1, 1) + 1) / 2) ** gam * 2 - 1
        return out, np.asarray(y)[src.numpy()]

    return gen


def label_readback(model: nn.Module, x: torch.Tensor, y: np.ndarray) -> float:
    """Fraction of inherited labels a classifier trained on real images reads back (threshold 0.5), averaged
    over labels: the gate that synthetic images carry their labels (passed at >= 0.9)."""
    pred = predict(model, x) > 0.5
    return float(np.mean(pred == np.asarray(y).astype(bool)))


def augment_seeds(x_pool: torch.Tensor, y_pool: np.ndarray, x_test: torch.Tensor, y_test: np.ndarray,
                  generators: dict[str, Generator], *, subsets: Sequence[int] = (10, 20, 50), seeds: int = 5,
                  ratio: int = 5, arch: str = "small", epochs: int = 15, min_steps: int = 150,
                  gate: bool = True, progress: Callable[[str], None] | None = None) -> dict:
    """The seed protocol: for each real ``n`` and subset seed, a classifier on the ``n`` real images
    (label-balanced, nested) and one per generator on the real images + ``ratio`` generated images per
    real image; macro AUC on the test set; paired t-tests across seeds against real-only (and against
    every other row, ``p_vs``). With ``gate``, a classifier trained on the whole labelled pool reads the
    inherited labels back from each generator's images of the largest ``n`` (:func:`label_readback`)."""
    from latentmed.ldm.synthesis import nested_subsets

    expect(len(x_pool) == len(y_pool) and len(x_test) == len(y_test), "images and labels must have equal lengths.")
    aucs: dict[int, dict[str, list[float]]] = {}
    kept: dict[str, tuple] = {}
    for n in sorted(subsets):
        aucs[n] = {}
        for s in range(seeds):
            idx = nested_subsets(y_pool, [n], s)[n]
            xr, yr = x_pool[idx], y_pool[idx]
            sets = {"real": (xr, yr)}
            for name, gen in generators.items():
                xg, yg = gen(xr, yr, n * ratio, 1000 * n + s)
                sets[name] = (torch.cat([xr, xg.to(xr)]), np.concatenate([yr, yg]))
                if n == max(subsets):
                    prev = kept.get(name)
                    kept[name] = (xg, yg) if prev is None else (torch.cat([prev[0], xg]), np.concatenate([prev[1], yg]))
            for name, (x, y) in sets.items():
                model = train_classifier(x, y, arch=arch, epochs=epochs, seed=s, min_steps=min_steps)
                aucs[n].setdefault(name, []).append(macro_auc(y_test, predict(model, x_test)))
            if progress:
                progress(f"n={n} seed {s}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in aucs[n].items()))
    rows = []
    for n, by in aucs.items():
        for name, vals in by.items():
            rows.append({"subset": n, "setting": name, "auc_mean": float(np.mean(vals)), "auc_std": float(np.std(vals)),
                         "delta_vs_real": float(np.mean(vals) - np.mean(by["real"])),
                         "p_value": float("nan") if name == "real" else paired_test(vals, by["real"]),
                         "p_vs": {o: paired_test(vals, v) for o, v in by.items() if o != name}, "aucs": vals})
    result = {"rows": rows, "seeds": seeds, "ratio": ratio, "subsets": list(subsets)}
    if gate:
        model = train_classifier(x_pool, y_pool, arch=arch, epochs=epochs, seed=0, min_steps=min_steps)
        result["gate"] = {"real_test": label_readback(model, x_test, y_test),
                          **{k: label_readback(model, *v) for k, v in kept.items()}}
    result["kept"] = kept
    return result


def seeds_table(result: dict) -> str:
    """Markdown table of :func:`augment_seeds` (``*``: p < 0.05 against real-only)."""
    md = [f"macro AUC, mean ± std over {result['seeds']} subset seeds, 1:{result['ratio']} extra images per real "
          "image; paired t-test p against real only", "", "| real n | setting | macro AUC | Δ vs real | p |",
          "|---|---|---|---|---|"]
    for r in result["rows"]:
        p = r["p_value"]
        star = "*" if p == p and p < 0.05 else ""
        md.append(f"| {r['subset']} | {r['setting']} | {r['auc_mean']:.3f} ± {r['auc_std']:.3f} | "
                  f"{r['delta_vs_real']:+.3f}{star} | {'' if p != p else f'{p:.3g}'} |")
    if "gate" in result:
        md += ["", "Label read-back by a classifier trained on the whole labelled pool (gate >= 0.90):", ""]
        md += [f"- {k}: {v:.3f}" for k, v in result["gate"].items()]
    return "\n".join(md) + "\n"
