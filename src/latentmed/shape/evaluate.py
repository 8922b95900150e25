"""Refinement of coarse masks, the metric table (paper's Table 1 plus precision and HD95), latent variance.

Also the test bed's reference pieces: the constant-mask floor, the posterior-element region
(scores on the arch alone) and a paired test.

Metrics come from :func:`latentmed.metrics.segmentation.segmentation_scores` called as
(truth, pred) (the LSD-EBM reference code swapped them, so its SEN/SPEC were precision/NPV).
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from latentmed.errors import expect
from latentmed.io import write_json, write_text
from latentmed.shape.volumes import list_masks

METRICS = ("dice", "volumetric_similarity", "sensitivity", "specificity", "nmi", "cohen_kappa", "precision",
           "hausdorff95")
METRIC_LABELS = {"dice": "Dice", "volumetric_similarity": "VS", "sensitivity": "SEN", "specificity": "SPEC",
                 "nmi": "NMI", "cohen_kappa": "Kappa", "precision": "PREC", "hausdorff95": "HD95"}


def load_pairs(input_dir: str | Path, truth_dir: str | Path, size: int, *, spacing: float = 1.0,
               threshold: float | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Coarse inputs and truths matched by file name, as ``bool[N,S,S,S]`` cubes.

    Both are cropped around the TRUTH's centre of mass so that they stay aligned.
    """
    from latentmed.shape.volumes import crop_to_cube, load_mask

    inputs = {p.name: p for p in list_masks(input_dir)}
    truths = {p.name: p for p in list_masks(truth_dir)}
    missing = sorted(set(inputs) - set(truths))
    expect(not missing, f"{truth_dir}: no truth for {len(missing)} input(s), e.g. {missing[:3]}. "
                        "Inputs and truths are matched by file name.")
    names = sorted(inputs)
    coarse, truth = [], []
    for name in names:
        t, _ = load_mask(truths[name], spacing=spacing, threshold=threshold)
        c, _ = load_mask(inputs[name], spacing=spacing, threshold=threshold)
        expect(c.shape == t.shape, f"{name}: input shape {c.shape} differs from truth shape {t.shape}.")
        cube_t = crop_to_cube(t, size, where=str(truths[name]))
        cube_c = _crop_like(c, t, size)
        truth.append(cube_t)
        coarse.append(cube_c)
    return names, np.stack(coarse), np.stack(truth)


def _crop_like(mask: np.ndarray, reference: np.ndarray, size: int) -> np.ndarray:
    """Crop ``mask`` (a mask or a label map; the dtype is kept) with the window that :func:`crop_to_cube`
    picks for ``reference`` (no fit check)."""
    from scipy import ndimage

    com = np.round(ndimage.center_of_mass(reference)).astype(int)
    start = com - size // 2
    out = np.zeros((size,) * 3, dtype=mask.dtype)
    src = [slice(max(0, s), min(n, s + size)) for s, n in zip(start, mask.shape)]
    dst = [slice(sl.start - s, sl.stop - s) for sl, s in zip(src, start)]
    out[tuple(dst)] = mask[tuple(src)]
    return out


def load_part_cubes(truth_dir: str | Path, names: Sequence[str], size: int, *, spacing: float = 1.0
                    ) -> np.ndarray | None:
    """Part labels of the truths (``parts/<name>`` beside each mask, as the spine3d phantom writes them),
    cropped like :func:`load_pairs` crops the truths (around the labelled voxels' centre of mass):
    ``uint8[N,S,S,S]``, or ``None`` when a truth has no part map."""
    from latentmed.data.formats import read_nifti
    from latentmed.data.phantoms.spine3d import parts_path
    from latentmed.shape.volumes import resample_isotropic

    paths = [parts_path(Path(truth_dir) / name) for name in names]
    if not paths or not all(p.is_file() for p in paths):
        return None
    out = np.zeros((len(paths),) + (size,) * 3, np.uint8)
    for i, path in enumerate(paths):
        data, _, zooms = read_nifti(path)
        labels = np.rint(np.asarray(data)).astype(np.uint8)
        expect(labels.ndim == 3 and labels.any(), f"{path}: expected a non-empty 3D part-label map, got shape "
                                                  f"{labels.shape} with {int((labels > 0).sum())} labelled voxels.")
        if any(abs(float(z) - spacing) > 1e-3 for z in zooms[:3]):  # as load_mask resamples its mask
            labels = resample_isotropic(labels, tuple(zooms[:3]), spacing)
        out[i] = _crop_like(labels, labels > 0, size)
    return out


def refine_cubes(model: torch.nn.Module | None, coarse: np.ndarray, *, steps: int | None = None,
                 batch_size: int = 8, seed: int = 0, threshold: float = 0.5, recipe: str | None = None,
                 progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, float]:
    """Refine ``bool[N,S,S,S]`` cubes with ``model`` (``None``: identity, the input row of Table 1);
    ``recipe`` (``"ours"`` | ``"reference"``; unset: each model's own) picks the inference settings.

    Returns ``(refined bool[N,S,S,S], seconds per sample)``.
    """
    if model is None:
        return coarse.copy(), 0.0
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    out, elapsed = [], 0.0
    for i in range(0, len(coarse), batch_size):
        x = torch.from_numpy(coarse[i:i + batch_size, None].astype(np.float32)).to(device)
        start = time.perf_counter()
        probs = model.refine(x, steps=steps, generator=generator, recipe=recipe)
        elapsed += time.perf_counter() - start
        out.append((probs[:, 0] > threshold).cpu().numpy())
        if progress is not None:
            progress(len(x))
    return np.concatenate(out), elapsed / max(1, len(coarse))


def score_cases(truth: np.ndarray, pred: np.ndarray, region: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """:data:`METRICS` per case, (truth, pred) order: ``{metric: float64[N]}``.

    ``region`` (``bool[N,S,S,S]``, optional): score only inside it (e.g. :func:`posterior_region`);
    precision is ``TP / (TP + FP)`` (1 when nothing is predicted), HD95 in voxels.
    """
    from latentmed.metrics.segmentation import confusion_counts, segmentation_scores

    if region is not None:
        truth, pred = truth & region, pred & region
    t, p = torch.from_numpy(np.ascontiguousarray(truth)), torch.from_numpy(np.ascontiguousarray(pred))
    scores = segmentation_scores(t, p, hausdorff=True)
    counts = confusion_counts(t, p)
    tp, fp = counts["tp"].double(), counts["fp"].double()
    scores["precision"] = torch.where(tp + fp > 0, tp / (tp + fp).clamp_min(1), torch.ones_like(tp))
    return {k: scores[k].cpu().numpy() for k in METRICS}


def posterior_region(parts: np.ndarray, posterior: tuple[int, ...] = (2, 3, 4, 5, 6)) -> np.ndarray:
    """Voxels whose nearest labelled truth voxel belongs to a posterior element (``bool``, same shape).

    ``parts``: integer part labels ``[N,S,S,S]`` or ``[S,S,S]`` (spine3d: 1 body, 2-6 posterior).
    The cube is split by nearest part (a Voronoi partition of the truth), so predictions near
    the arch count as posterior, near the body as body.
    """
    from scipy import ndimage

    parts = np.asarray(parts)
    if parts.ndim == 4:
        return np.stack([posterior_region(p, posterior) for p in parts])
    expect(parts.ndim == 3 and parts.any(), f"parts of shape {parts.shape}: expected non-empty 3D part labels.")
    _, nearest = ndimage.distance_transform_edt(parts == 0, return_indices=True)
    return np.isin(parts[tuple(nearest)], posterior)


def constant_mask(train_masks: np.ndarray) -> np.ndarray:
    """The floor: voxel-wise majority (> 50%) of the training masks ``bool[N,S,S,S]`` -> ``bool[S,S,S]``."""
    expect(train_masks.ndim == 4 and len(train_masks) > 0, "train_masks: expected bool[N,S,S,S] with N >= 1.")
    return train_masks.mean(0) > 0.5


def paired_test(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Two-sided paired tests of ``a`` vs ``b`` (same cases or seeds): mean difference, t-test, Wilcoxon."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    expect(a.shape == b.shape and a.size >= 2, f"paired test: expected two equal-length samples of >= 2, got "
                                               f"{a.shape} and {b.shape}.")
    d = a - b
    out = {"n": int(a.size), "mean_difference": float(d.mean()), "t_pvalue": float("nan"),
           "wilcoxon_pvalue": float("nan")}
    if np.any(d != 0):
        out["t_pvalue"] = float(stats.ttest_rel(a, b).pvalue)
        out["wilcoxon_pvalue"] = float(stats.wilcoxon(a, b).pvalue)
    return out


@dataclass
class EvaluationResult:
    """Per-case scores and timing per method; :meth:`table` renders the paper's Table 1.

    ``posterior``: the same scores inside :func:`posterior_region` (when the truths have part maps);
    ``directions``: the chain's direction control per LSD-EBM (:func:`~latentmed.shape.controls.chain_direction`).
    """

    names: list[str]
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    seconds_per_sample: dict[str, float] = field(default_factory=dict)
    posterior: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    directions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def summary(self, scope: str = "overall") -> dict[str, dict[str, tuple[float, float]]]:
        """``{method: {metric: (mean, std over cases)}}`` of ``scope`` (``"overall"`` | ``"posterior"``)."""
        scores = self.scores if scope == "overall" else self.posterior
        return {m: {k: (float(np.mean(v)), float(np.std(v))) for k, v in s.items()} for m, s in scores.items()}

    def table(self) -> str:
        """Markdown: the overall table, then the posterior-element table when there is one."""
        head = "| Method | " + " | ".join(METRIC_LABELS[k] for k in METRICS) + " | s/sample |"
        rows = []
        for scope in ("overall", "posterior") if self.posterior else ("overall",):
            if self.posterior:
                rows += [f"{'' if scope == 'overall' else chr(10)}**{scope}**" + (
                    " (posterior elements: voxels nearest to pedicles, laminae and processes)"
                    if scope == "posterior" else ""), ""]
            rows += [head, "|" + "---|" * (len(METRICS) + 2)]
            for method, stats in self.summary(scope).items():
                cells = [f"{stats[k][0]:.3f} ± {stats[k][1]:.3f}" for k in METRICS]
                rows.append(f"| {method} | " + " | ".join(cells)
                            + f" | {self.seconds_per_sample.get(method, 0.0):.4f} |")
        if self.directions:
            rows += ["", "**controls: direction** (the chain's move z_refined - mean(coarse) against "
                     "mean(clean) - mean(coarse))", "",
                     "| Method | cosine | move / distance |", "|---|---|---|"]
            rows += [f"| {m} | {d['cosine'].mean():.3f} ± {d['cosine'].std():.3f} | "
                     f"{d['move_ratio'].mean():.3f} ± {d['move_ratio'].std():.3f} |"
                     for m, d in self.directions.items()]
        return "\n".join(rows)

    def per_case_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["method", "case", "scope", *METRICS])
        for scope, scores in (("overall", self.scores), ("posterior", self.posterior)):
            for method, s in scores.items():
                for i, name in enumerate(self.names):
                    writer.writerow([method, name, scope, *(f"{s[k][i]:.6f}" for k in METRICS)])
        return buf.getvalue()

    def save(self, out_dir: str | Path) -> None:
        out_dir = Path(out_dir)
        write_text(out_dir / "per_case.csv", self.per_case_csv())
        write_text(out_dir / "table.md", self.table() + "\n")
        metrics = {scope: {m: {k: {"mean": v[0], "std": v[1]} for k, v in s.items()}
                           for m, s in self.summary(scope).items()} for scope in ("overall", "posterior")}
        directions = {m: {k: {"mean": float(v.mean()), "std": float(v.std())} for k, v in d.items()}
                      for m, d in self.directions.items()}
        write_json(out_dir / "summary.json", {"n_cases": len(self.names), "seconds_per_sample": self.seconds_per_sample,
                                              "metrics": metrics["overall"], "posterior_metrics": metrics["posterior"],
                                              "directions": directions})


def latent_variance_trace(model, coarse: np.ndarray, *, steps: int | None = None, seed: int = 0,
                          batch_size: int = 64) -> list[tuple[int, float]]:
    """Mean latent variance at each step of the reverse chain (the paper's Fig. 5).

    At each step t the variance of every latent coordinate over the refined cases is averaged
    over coordinates: ``mean_j Var_i z_t[i, j]`` (our reading of the figure), from z_t down to z_0.
    """
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    per_step: dict[int, list[torch.Tensor]] = {}

    def record(step: int, z: torch.Tensor) -> None:
        per_step.setdefault(step, []).append(z.detach().cpu())

    for i in range(0, len(coarse), batch_size):
        x = torch.from_numpy(coarse[i:i + batch_size, None].astype(np.float32)).to(device)
        model.refine_latent(x, steps, generator, callback=record)
    return [(step, float(torch.cat(zs).var(0, unbiased=len(coarse) > 1).mean())) for step, zs in
            sorted(per_step.items(), reverse=True)]


def evaluate(models: dict[str, torch.nn.Module | None], coarse: np.ndarray, truth: np.ndarray, names: Sequence[str],
             *, steps: int | None = None, batch_size: int = 8, seed: int = 0, keep_outputs: bool = False,
             parts: np.ndarray | None = None, recipe: str | None = None, controls: bool = False,
             sweep_points: int | None = None) -> tuple[EvaluationResult, dict[str, np.ndarray]]:
    """Refine with every model (``None`` = the coarse input itself) and score against ``truth``;
    with the truths' part labels ``parts`` also on the posterior elements alone.

    ``controls`` adds, for each LSD-EBM, the rows ``energy off``, ``round trip`` (the clean masks through
    the same chain) and ``t=k`` for the sweep of the starting step (all of 0..T, or ``sweep_points``), and
    its direction control (:mod:`latentmed.shape.controls`); for each VAE the row ``sampled`` (decoding
    a posterior sample, as the reference's VAE does).
    """
    from latentmed.shape.baselines import ShapeVAE
    from latentmed.shape.controls import chain_direction, energy_off, sweep_steps

    expect(coarse.shape == truth.shape, f"coarse {coarse.shape} and truth {truth.shape} differ in shape.")
    result = EvaluationResult(names=list(names))
    outputs: dict[str, np.ndarray] = {}
    region = posterior_region(parts) if parts is not None else None
    kw = {"batch_size": batch_size, "seed": seed}

    def add(method: str, pred: np.ndarray, sec: float) -> None:
        result.scores[method] = score_cases(truth, pred)
        if region is not None:
            result.posterior[method] = score_cases(truth, pred, region)
        result.seconds_per_sample[method] = sec
        if keep_outputs:
            outputs[method] = pred

    for method, model in models.items():
        add(method, *refine_cubes(model, coarse, steps=steps, recipe=recipe, **kw))
        if not controls or model is None:
            continue
        if hasattr(model, "energy_enabled"):  # LSD-EBM
            with energy_off(model):
                add(f"{method} energy off", *refine_cubes(model, coarse, steps=steps, recipe=recipe, **kw))
            add(f"{method} round trip", *refine_cubes(model, truth, steps=steps, recipe=recipe, **kw))
            for t in sweep_steps(model.config.num_steps, sweep_points):
                add(f"{method} t={t}", *refine_cubes(model, coarse, steps=t, recipe=recipe, **kw))
            result.directions[method] = chain_direction(model, coarse, truth, steps=steps, recipe=recipe, **kw)
        elif isinstance(model, ShapeVAE):
            add(f"{method} sampled", *refine_cubes(model, coarse, recipe="reference", **kw))
    return result, outputs
