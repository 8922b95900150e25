"""Grading evaluation like the papers' Tables 2/3: detection AUC, grading macro-F1, MAE, confusion matrix.

A row is one method on one held-out set: the latent grader with each calibration (same hyperplane,
:meth:`HyperplaneGrader.recalibrate`) and, for reference, the same probe on raw pixels and on a
randomly initialised encoder, and a supervised CNN. Two protocols (:func:`protocol_view`): the
papers' (AUC G0 vs G2+G3, macro-F1 over G0, G2, G3 with predictions below G2 counted healthy) and
all grades (G0-G3).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from latentmed.errors import expect
from latentmed.metrics.classification import auc, confusion, macro_f1, mae


PROTOCOLS = ("papers", "all")


def protocol_view(protocol: str, y_true, predicted, *, negative: Sequence[int], positive: Sequence[int],
                  scale: Sequence[int]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """``(keep, predicted, f1_grades)``: which samples a protocol scores, its predictions and its F1 grades.

    - ``"papers"`` (Keicher, Atad et al., Table 3): only samples of the graded grades (``negative +
      positive``, e.g. G0, G2, G3: G1 left out as for the AUC); predictions below the lowest positive
      grade count as healthy (the lowest negative grade); macro-F1 over those grades.
    - ``"all"``: every sample, the predictions as they are, macro-F1 over the whole ``scale`` (G0-G3).
    """
    expect(protocol in PROTOCOLS, f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}.")
    y = np.asarray(y_true).astype(int)
    p = np.asarray(predicted).astype(int)
    if protocol == "all":
        return np.ones(len(y), dtype=bool), p, [int(g) for g in scale]
    graded = sorted(int(g) for g in (*negative, *positive))
    p = np.where(p < min(positive), min(negative), p)
    return np.isin(y, graded), p, graded


def bootstrap_auc(y_det, score, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC, resampling positives and negatives separately.

    Each resample's AUC is the Mann-Whitney statistic ``(R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)``
    from mid-ranks (ties count one half), as ``roc_auc_score``.
    """
    from scipy.stats import rankdata

    y_det, score = np.asarray(y_det).astype(int), np.asarray(score, dtype=np.float64)
    pos, neg = score[y_det == 1], score[y_det == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    sample = np.concatenate([rng.choice(pos, (n_boot, len(pos))), rng.choice(neg, (n_boot, len(neg)))], axis=1)
    ranks = rankdata(sample, axis=1)[:, :len(pos)].sum(axis=1)
    stats = (ranks - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def grading_metrics(y_true, detection_score, predicted, *, negative: Sequence[int], positive: Sequence[int],
                    scale: Sequence[int], protocol: str = "papers", f1_grades: Sequence[int] | None = None,
                    method: str = "", n_boot: int = 1000, seed: int = 0) -> dict:
    """Metrics of one method under ``protocol`` (:func:`protocol_view`).

    ``detection_score``: higher = more likely positive (the signed distance, or P(positive)); the AUC
    uses only samples of the ``negative`` and ``positive`` grades, with a stratified bootstrap 95%
    interval (``n_boot`` resamples). ``predicted``: ordinal grades; macro-F1 over the protocol's grades
    (or ``f1_grades``), MAE, accuracy and the confusion matrix over the samples the protocol scores.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(detection_score, dtype=np.float64)
    p = np.asarray(predicted).astype(int)
    expect(len(y) == len(s) == len(p), f"lengths differ: {len(y)} labels, {len(s)} scores, {len(p)} predictions.")
    det = np.isin(y, list(negative) + list(positive))
    y_det = np.isin(y[det], list(positive)).astype(int)
    det_auc = auc(y_det, s[det]) if len(np.unique(y_det)) == 2 else float("nan")
    keep, p, grades = protocol_view(protocol, y, p, negative=negative, positive=positive, scale=scale)
    grades = grades if f1_grades is None else [int(g) for g in f1_grades]
    shown = grades if protocol == "papers" else [int(g) for g in scale]
    y, p = y[keep], p[keep]
    return {
        "method": method, "protocol": protocol, "n": int(len(y)),
        "detection_auc": det_auc,
        "detection_auc_ci": list(bootstrap_auc(y_det, s[det], n_boot, seed=seed)),
        "macro_f1": macro_f1(y, p, labels=grades),
        "mae": mae(y, p),
        "accuracy": float(np.mean(y == p)),
        "f1_grades": grades,
        "scale": shown,
        "confusion": confusion(y, p, labels=shown).tolist(),
    }


def grader_rows(grader, z, y, calibrations: Sequence[str] | None = None, f1_grades=None, protocol: str = "papers",
                method: str = "latent", seed: int = 0) -> list[dict]:
    """One metrics row per calibration (``None``: the grader's own; strings like ``"poly:3:0,2,3"``)."""
    from latentmed.latent.grader import calibration_name, parse_calibration

    variants = [grader] + [grader.recalibrate(**parse_calibration(c)) for c in (calibrations or [])
                           if calibration_name(grader) != c]
    distance = grader.signed_distance(z)
    rows = []
    for g in variants:
        rows.append(grading_metrics(y, distance, g.predict(z), negative=g.negative_, positive=g.positive_,
                                    f1_grades=f1_grades, scale=g.classes_, protocol=protocol, seed=seed,
                                    method=f"{method} {g.classifier} + {calibration_name(g)}"))
    return rows


@dataclasses.dataclass
class GradingResult:
    """What :func:`latentmed.latent.evaluate_grader` measured, as numbers and arrays (no files).

    ``tables``: one list of :func:`grading_metrics` rows (one per method: the latent grader with each
    calibration, then the reference rows) per protocol; ``rows`` is the chosen ``protocol``'s. The
    calibration plot's data: each held-out sample's ``distance`` and true ``grades``, and each
    calibration's grade ``curves[name]`` over ``curve_distance``. ``tsne``: the t-SNE embedding of
    every labelled latent (``tsne_ids``), coloured by each ``tsne_colours[column]``; None when skipped.
    Writers: :mod:`latentmed.latent.report`.
    """

    column: str
    protocol: str
    tables: dict[str, list[dict]]
    negative: list[int]
    positive: list[int]
    n_train: int
    ids: np.ndarray
    grades: np.ndarray
    distance: np.ndarray
    curve_distance: np.ndarray
    curves: dict[str, np.ndarray]
    model_id: str | None = None
    class_weight: str | None = None
    healthy_below: int | None = None
    encoder: str | None = None
    tsne: np.ndarray | None = None
    tsne_ids: np.ndarray | None = None
    tsne_colours: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    files: list[str] = dataclasses.field(default_factory=list)

    @property
    def rows(self) -> list[dict]:
        return self.tables[self.protocol]

    @property
    def other_protocol(self) -> str:
        return next(p for p in PROTOCOLS if p != self.protocol)

    def to_dict(self) -> dict:
        """The JSON report (``table.json``): settings, ``rows`` and ``rows_<other protocol>``, files."""
        out = {"column": self.column, "n_test": int(len(self.ids)), "n_train": self.n_train, "model_id": self.model_id,
               "negative": list(self.negative), "positive": list(self.positive), "protocol": self.protocol,
               "class_weight": self.class_weight, "healthy_below": self.healthy_below, "rows": self.rows,
               f"rows_{self.other_protocol}": self.tables[self.other_protocol], "files": list(self.files)}
        return out | ({"encoder": self.encoder} if self.encoder else {})


def markdown_table(rows: Sequence[dict], title: str = "", heading: str = "##", confusion: bool = True) -> str:
    """Rows as a Markdown table (AUC with CI, macro-F1, MAE, accuracy, n), then (``confusion``) each confusion matrix.

    ``title`` becomes a ``heading`` line (e.g. ``"###"`` inside a report's ``## Grading`` section).
    """
    lines = [f"{heading} {title}", ""] if title else []
    if rows:
        grades = ",".join(str(g) for g in rows[0]["f1_grades"])
        lines += [f"| method | detection AUC (95% CI) | macro-F1 (grades {grades}) | MAE | accuracy | n |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            lo, hi = r.get("detection_auc_ci", (float("nan"), float("nan")))
            lines.append(f"| {r['method']} | {r['detection_auc']:.3f} ({lo:.3f}-{hi:.3f}) | {r['macro_f1']:.3f} | "
                         f"{r['mae']:.3f} | {r['accuracy']:.3f} | {r['n']} |")
    for r in rows if confusion else []:
        scale = r["scale"]
        lines += ["", f"Confusion matrix, {r['method']} (rows: true grade, columns: predicted):", "",
                  "| true \\ pred | " + " | ".join(f"G{g}" for g in scale) + " |",
                  "|---" * (len(scale) + 1) + "|"]
        for g, row in zip(scale, r["confusion"]):
            lines.append(f"| G{g} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def tsne_embedding(z, random_state: int = 0, perplexity: float = 30.0, standardize: bool = True) -> np.ndarray:
    """2-D t-SNE of latents (``sklearn.manifold.TSNE``; perplexity capped at (n - 1) / 3)."""
    from sklearn.manifold import TSNE

    z = np.asarray(z, dtype=np.float64)
    expect(len(z) >= 5, f"t-SNE needs at least 5 samples; got {len(z)}.")
    if standardize:
        z = (z - z.mean(0)) / np.where(z.std(0) > 1e-12, z.std(0), 1.0)
    perplexity = min(float(perplexity), (len(z) - 1) / 3.0)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state).fit_transform(z)
