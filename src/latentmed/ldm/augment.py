"""The augmentation experiment of DiNO-Diffusion (Table 1, Sec. 2.5) and the memorisation check.

Protocol (:func:`augment_rows`, :class:`AugmentProtocol`): from a pool of labelled real images take
label-balanced nested subsets (data regimes ``n``); split each into k stratified folds (the paper;
or ``seeds`` subsets); in each split a generator makes ``max(ratios)`` images per real training
image FROM THE TRAINING IMAGES ONLY, and a multi-label classifier (:class:`ClassifierSpec`: the small
CPU CNN, or DenseNet-121 with LR on plateau and early stopping on a validation split) is trained on
the real images (``real``), on those plus ``r`` generated images per real one (``real+G 1:r``) and
optionally on the generated ones alone (``G-only 1:r``); macro AUC on a held-out real test set, mean
± std over splits, paired t-test (``scipy.stats.ttest_rel``) against ``real`` across the same splits.
:func:`augment_eval` runs it for one DiNO-Diffusion run (``G = syn``); the experiment script adds
classical augmentation, an oracle and the shuffled-token null as generators.

Memorisation (:func:`memorisation_check`, not in the paper): distance of each synthetic image to
its nearest training image against the distance of held-out real images to their nearest
training image, in a feature space; synthetic distances far below the real-to-real ones mean
the model copies its training data.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
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


def check_test_unseen(ldm, test_dir: str | os.PathLike) -> None:
    """Error when the run's training data or checkpoint selection used ``test_dir`` (``RUN/ldm.json`` extra)."""
    test = str(Path(test_dir).resolve())
    extra = getattr(ldm.config, "extra", {}) or {}
    for key, what in (("selection_data", "checkpoint selection"), ("train_data", "training")):
        if extra.get(key) and str(Path(extra[key]).resolve()) == test:
            raise LatentmedError(f"the diffusion run's {what} used {test}, the test set of this evaluation; select "
                                 "checkpoints on a validation split of the unlabelled pool (`ldm train --heldout`, "
                                 "eval.heldout) and keep the test set for the final numbers only.")




# ---- generators: extra training images from a real split -------------------------------------------------------------
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
    from latentmed.ldm.variation import label_agreement

    return float(np.mean(label_agreement(predict(model, x), y)))



# ---- the protocol: splits of each real regime, one row per generator and ratio ------------------------------------
@dataclass
class ClassifierSpec:
    """The classifier of every row. Default: the small CPU CNN for ``epochs`` (and ``min_steps``) with a
    cosine learning rate (:func:`train_classifier`). ``early_stopping``: the paper's recipe (Sec. 2.5, with
    ``arch="densenet121"``): :func:`~latentmed.train.classifier.fit_classifier_early_stopping` for at most
    ``epochs`` epochs on a stratified ``val_fraction`` validation split of the real training images (the
    generators then see only the rest). Images are area-resized to ``size``."""

    arch: str = "small"
    size: int = 32
    epochs: int = 15
    min_steps: int = 150
    early_stopping: bool = False
    val_fraction: float = 0.2
    lr: float | None = None  # None: 2e-3 (cosine) or 1e-3 (early stopping)

    def __post_init__(self) -> None:
        expect(0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got {self.val_fraction}.")
        expect(self.arch != "densenet121" or self.size >= 32, f"DenseNet-121 pools its input by 32: classifier "
                                                              f"size {self.size} is too small; use 32 or more.")

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.shape[-1] == self.size else F.interpolate(x.float(), size=(self.size,) * 2, mode="area")

    def fit(self, x: torch.Tensor, y: np.ndarray, val: tuple | None = None, seed: int = 0) -> nn.Module:
        if not self.early_stopping:
            return train_classifier(self.resize(x), y, arch=self.arch, epochs=self.epochs, min_steps=self.min_steps,
                                    lr=self.lr or 2e-3, seed=seed)
        from latentmed.train.classifier import EarlyStopping, fit_classifier_early_stopping

        expect(val is not None, "early stopping needs a validation split.")
        return fit_classifier_early_stopping(self.resize(x), y, (self.resize(val[0]), val[1]), arch=self.arch,
                                             stopping=EarlyStopping(max_epochs=self.epochs), lr=self.lr or 1e-3,
                                             seed=seed)[0]

    def auc(self, model: nn.Module, x_test: torch.Tensor, y_test: np.ndarray) -> float:
        return macro_auc(y_test, predict(model, self.resize(x_test)))


@dataclass
class AugmentProtocol:
    """Which real regimes and splits: for each ``n`` of ``subsets`` (label-balanced, nested), ``folds``-fold
    stratified cross-validation (the paper; a classifier per fold on the other folds), or with ``folds=0``
    ``seeds`` subsets drawn with seeds 0..seeds-1. Every generator makes ``max(ratios)`` images per real
    training image once per split; the row ``1:r`` takes the first ``r`` per image. ``syn_only`` adds rows
    trained on the generated images alone."""

    subsets: Sequence[int] = (50, 200)
    ratios: Sequence[int] = (1, 5)
    folds: int = 5
    seeds: int = 5
    seed: int = 0
    syn_only: bool = False

    def __post_init__(self) -> None:
        self.subsets = tuple(sorted(int(n) for n in self.subsets))
        self.ratios = tuple(sorted(int(r) for r in self.ratios))
        expect(len(self.ratios) > 0 and self.ratios[0] >= 1, f"ratios must be integers >= 1, got {list(self.ratios)}.")
        expect(self.folds == 0 or self.folds >= 2, f"folds must be 0 (seeded subsets) or >= 2, got {self.folds}.")
        expect(self.folds > 0 or self.seeds >= 1, f"seeds must be >= 1 when folds=0, got {self.seeds}.")
        expect(not self.folds or self.subsets[0] >= self.folds,
               f"subset {self.subsets[0]} is smaller than the number of folds {self.folds}; lower --folds.")

    def splits(self, y_pool: np.ndarray, n: int) -> list[np.ndarray]:
        """Real training indices into the pool, one array per fold (or seed)."""
        from sklearn.model_selection import StratifiedKFold

        from latentmed.ldm.synthesis import nested_subsets

        if not self.folds:
            return [nested_subsets(y_pool, [n], s)[n] for s in range(self.seeds)]
        idx = nested_subsets(y_pool, [n], self.seed)[n]
        kf = StratifiedKFold(self.folds, shuffle=True, random_state=self.seed)
        return [idx[tr] for tr, _ in kf.split(idx, label_strata(y_pool[idx], self.folds))]


def label_strata(y: np.ndarray, min_count: int) -> np.ndarray:
    """Label combinations as strata; combinations with fewer than ``min_count`` images are pooled (and the pool
    joins the largest stratum if it is still too small), so that stratified splitters accept them."""
    keys = np.array(["".join(map(str, row)) for row in np.asarray(y).astype(int)], dtype=object)
    uniq, counts = np.unique(keys, return_counts=True)
    rare = np.isin(keys, uniq[counts < min_count])
    keys[rare] = "rare"
    if 0 < rare.sum() < min_count:
        keys[rare] = uniq[np.argmax(counts)]
    return keys


def split_validation(y: np.ndarray, idx: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(fit, val)``: a label-stratified ``fraction`` of ``idx`` (at least one image) held out for validation."""
    from sklearn.model_selection import train_test_split

    expect(len(idx) >= 4, f"{len(idx)} real training images are too few for a validation split; use more real "
                          "images or turn early stopping off.")
    n_val = max(1, int(round(fraction * len(idx))))
    strata = label_strata(y[idx], 2)
    ok = len(set(strata)) <= min(n_val, len(idx) - n_val)
    fit, val = train_test_split(idx, test_size=n_val, random_state=seed, stratify=strata if ok else None)
    return np.sort(fit), np.sort(val)


def training_sets(xr: torch.Tensor, yr: np.ndarray, generators: dict[str, "Generator"], ratios: Sequence[int],
                  seed: int, syn_only: bool = False) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """``({setting: (x, y)}, {generator: (x_gen, y_gen)})`` for one split: ``real``; ``real+G 1:r`` (the real
    images and the first ``r * m`` generated ones); with ``syn_only`` also ``G-only 1:r``."""
    m, top = len(xr), max(ratios)
    sets, made = {"real": (xr, yr)}, {}
    for name, gen in generators.items():
        xg, yg = gen(xr, yr, top * m, seed)
        expect(len(xg) == len(yg) == top * m, f"generator {name!r} returned {len(xg)} images for {top * m} asked.")
        made[name] = (xg, np.asarray(yg))
        for r in ratios:
            xs, ys = xg[: r * m].to(xr), np.asarray(yg)[: r * m]
            sets[f"real+{name} 1:{r}"] = (torch.cat([xr, xs]), np.concatenate([yr, ys]))
            if syn_only:
                sets[f"{name}-only 1:{r}"] = (xs, ys)
    return sets, made


@dataclass
class AugmentResult:
    """What :func:`augment_rows` / :func:`augment_eval` measured: ``aucs[n][setting]`` (one AUC per split),
    ``rows`` (means, deltas, paired p-values), the label read-back ``gate``, the generated images of the largest
    ``n`` (``kept``, not serialised), ``extra`` (conditioner, memorisation...) and ``figures`` (image grids)."""

    protocol: AugmentProtocol
    classifier: ClassifierSpec
    aucs: dict
    gate: dict = field(default_factory=dict)
    kept: dict = field(default_factory=dict, repr=False)
    extra: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict, repr=False)
    gate_model: nn.Module | None = field(default=None, repr=False)

    @property
    def rows(self) -> list[dict]:
        out = []
        for n, by in self.aucs.items():
            for name, vals in by.items():
                out.append({"subset": n, "setting": name, "auc_mean": float(np.mean(vals)),
                            "auc_std": float(np.std(vals)), "delta_vs_real": float(np.mean(vals) - np.mean(by["real"])),
                            "p_value": float("nan") if name == "real" else paired_test(vals, by["real"]),
                            "p_vs": {o: paired_test(vals, v) for o, v in by.items() if o != name}, "aucs": vals})
        return out

    def to_dict(self) -> dict:
        return {"rows": self.rows, "gate": self.gate, "protocol": asdict(self.protocol),
                "classifier": asdict(self.classifier), **self.extra}


def augment_rows(x_pool: torch.Tensor, y_pool: np.ndarray, x_test: torch.Tensor, y_test: np.ndarray,
                 generators: dict[str, "Generator"], protocol: AugmentProtocol | None = None,
                 classifier: ClassifierSpec | None = None, *, gate: bool = True,
                 progress: Callable[[str], None] | None = None) -> AugmentResult:
    """The augmentation table: per real ``n`` and split (:meth:`AugmentProtocol.splits`) a classifier on each of
    :func:`training_sets`, macro AUC on the test set. With ``gate``, a classifier trained on the whole pool reads
    the inherited labels back from each generator's images of the largest ``n`` (:func:`label_readback`)."""
    protocol, clf = protocol or AugmentProtocol(), classifier or ClassifierSpec()
    expect(len(x_pool) == len(y_pool) and len(x_test) == len(y_test), "images and labels must have equal lengths.")
    res = AugmentResult(protocol, clf, {})
    for n in protocol.subsets:
        res.aucs[n] = {}
        for k, tr in enumerate(protocol.splits(y_pool, n)):
            fit, val = split_validation(y_pool, tr, clf.val_fraction, k) if clf.early_stopping else (tr, None)
            sets, made = training_sets(x_pool[fit], y_pool[fit], generators, protocol.ratios, 1000 * n + k,
                                       protocol.syn_only)
            vxy = None if val is None else (x_pool[val], y_pool[val])
            for name, (x, y) in sets.items():
                res.aucs[n].setdefault(name, []).append(clf.auc(clf.fit(x, y, vxy, seed=k), x_test, y_test))
            if n == protocol.subsets[-1]:
                for name, (xg, yg) in made.items():
                    px, py = res.kept.get(name, (xg[:0], yg[:0]))
                    res.kept[name] = (torch.cat([px, xg]), np.concatenate([py, yg]))
            if progress:
                progress(f"n={n} split {k}: " + ", ".join(f"{s} {v[-1]:.3f}" for s, v in res.aucs[n].items()))
    if gate:
        model = clf.fit(x_pool, y_pool, split_xy(x_pool, y_pool, clf), seed=0)
        res.gate = {"real_test": label_readback(model, clf.resize(x_test), y_test),
                    **{k: label_readback(model, clf.resize(v[0]), v[1]) for k, v in res.kept.items()}}
        res.gate_model = model
    return res


def split_xy(x: torch.Tensor, y: np.ndarray, clf: ClassifierSpec):
    """The validation images of a pool for an early-stopping classifier (``None`` otherwise)."""
    if not clf.early_stopping:
        return None
    _, val = split_validation(y, np.arange(len(y)), clf.val_fraction)
    return x[val], y[val]


def augment_table(result: AugmentResult) -> str:
    """Markdown table of an :class:`AugmentResult` (``*``: p < 0.05 against real only) and the gate."""
    p = result.protocol
    how = f"{p.folds}-fold cross-validation" if p.folds else f"{p.seeds} subset seeds"
    md = [f"macro AUC, mean ± std over {how}; classifier {result.classifier.arch}"
          f"{' (early stopping)' if result.classifier.early_stopping else ''}; paired t-test p against real only",
          "", "| real n | setting | macro AUC | Δ vs real | p |", "|---|---|---|---|---|"]
    for r in result.rows:
        pv = r["p_value"]
        star = "*" if pv == pv and pv < 0.05 else ""
        md.append(f"| {r['subset']} | {r['setting']} | {r['auc_mean']:.3f} ± {r['auc_std']:.3f} | "
                  f"{r['delta_vs_real']:+.3f}{star} | {'' if pv != pv else f'{pv:.3g}'} |")
    if result.gate:
        md += ["", "Label read-back by a classifier trained on the whole labelled pool (gate >= 0.90):", ""]
        md += [f"- {k}: {v:.3f}" for k, v in result.gate.items()]
    return "\n".join(md) + "\n"


@dataclass
class SynthesisSpec:
    """How :func:`augment_eval` samples: strategy (reconstruction | interpolation), DDIM steps, guidance."""

    strategy: str = "reconstruction"
    steps: int = 20
    guidance: float = 1.0


def augment_eval(ldm, real_dir: str | os.PathLike, test_dir: str | os.PathLike, label_columns: Sequence[str],
                 protocol: AugmentProtocol | None = None, *, synthesis: SynthesisSpec | None = None,
                 classifier: ClassifierSpec | None = None,
                 progress: Callable[[str], None] | None = None) -> AugmentResult:
    """DiNO-Diffusion's Table 1 for one run: rows ``real``, ``real+syn 1:r`` (with ``protocol.syn_only`` also
    ``syn-only 1:r``) from the run's ``synthesis`` strategy, the gate, the memorisation check of the kept images
    against the pool and a picture of the closest ones; write it with :func:`write_augment_report`."""
    from latentmed.ldm.data import folder_labels, open_ldm_images

    check_test_unseen(ldm, test_dir)
    syn = synthesis or SynthesisSpec()
    c = ldm.config.image_channels
    pool, test = open_ldm_images(real_dir, size=ldm.image_size, channels=c), \
        open_ldm_images(test_dir, size=ldm.image_size, channels=c)
    y_all, y_test = folder_labels(real_dir, pool.ids, label_columns), folder_labels(test_dir, test.ids, label_columns)
    for j, col in enumerate(label_columns):
        expect(0 < y_test[:, j].sum() < len(y_test), f"{test_dir}: label {col!r} needs positives and negatives in "
                                                     "the test set for an AUC.")
    x_all = pool.stack()
    gen = {"syn": ldm_generator(ldm, syn.strategy, syn.steps, syn.guidance)}
    res = augment_rows(x_all, y_all, test.stack(), y_test, gen, protocol, classifier, progress=progress)
    mem = memorisation_check(res.kept["syn"][0], x_all, test.stack())
    order = np.argsort(mem["synthetic_distances"])[:8]
    nearest = x_all[torch.as_tensor(mem["synthetic_nearest"])[order]]
    res.figures["memorisation_closest"] = (torch.cat([res.kept["syn"][0][order], nearest]), len(order))
    res.extra.update(conditioner=getattr(ldm.conditioner, "label", type(ldm.conditioner).__name__),
                     synthesis=asdict(syn), labels=list(label_columns), test_n=len(y_test), memorisation=mem)
    return res


def write_augment_report(result: AugmentResult, out_dir: str | os.PathLike) -> Path:
    """``OUT/table.md``, ``results.csv`` (one row per setting), ``results.json`` (everything but per-image lists),
    ``memorisation.json`` and each figure as ``OUT/<name>.png``; returns ``OUT``."""
    from latentmed.io import write_csv, write_json, write_text
    from latentmed.viz import save_image_grid

    out = Path(out_dir)
    head = f"Conditioner: {result.extra['conditioner']}\n\n" if "conditioner" in result.extra else ""
    write_text(out / "table.md", head + augment_table(result))
    write_csv(out / "results.csv", [{k: (";".join(f"{a:.4f}" for a in v) if k == "aucs" else v)
                                     for k, v in r.items() if k != "p_vs"} for r in result.rows])
    summary = result.to_dict()
    if "memorisation" in summary:
        write_json(out / "memorisation.json", summary["memorisation"])
        summary["memorisation"] = {k: v for k, v in summary["memorisation"].items() if not isinstance(v, list)}
    write_json(out / "results.json", summary)
    for name, (grid, nrow) in result.figures.items():
        save_image_grid(grid, out / f"{name}.png", nrow=nrow)
    return out
