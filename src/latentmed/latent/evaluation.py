"""Grading evaluation like the papers' Tables 2/3: detection AUC, grading macro-F1, MAE, confusion matrix.

A row is one method on one held-out set: the latent grader with each calibration (same hyperplane,
:meth:`HyperplaneGrader.recalibrate`) and, for comparison, a supervised CNN baseline.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from latentmed.errors import expect
from latentmed.metrics.classification import auc, confusion, macro_f1, mae


def grading_metrics(y_true, detection_score, predicted, *, negative: Sequence[int], positive: Sequence[int],
                    f1_grades: Sequence[int], scale: Sequence[int], method: str = "") -> dict:
    """Metrics of one method.

    ``detection_score``: higher = more likely positive (the signed distance, or P(positive)); the AUC
    uses only samples of the ``negative`` and ``positive`` grades. ``predicted``: ordinal grades; macro-F1
    over ``f1_grades``, MAE and accuracy over all samples, confusion matrix over ``scale``.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(detection_score, dtype=np.float64)
    p = np.asarray(predicted).astype(int)
    expect(len(y) == len(s) == len(p), f"lengths differ: {len(y)} labels, {len(s)} scores, {len(p)} predictions.")
    det = np.isin(y, list(negative) + list(positive))
    y_det = np.isin(y[det], list(positive)).astype(int)
    det_auc = auc(y_det, s[det]) if len(np.unique(y_det)) == 2 else float("nan")
    return {
        "method": method, "n": int(len(y)),
        "detection_auc": det_auc,
        "macro_f1": macro_f1(y, p, labels=list(f1_grades)),
        "mae": mae(y, p),
        "accuracy": float(np.mean(y == p)),
        "f1_grades": [int(g) for g in f1_grades],
        "scale": [int(g) for g in scale],
        "confusion": confusion(y, p, labels=list(scale)).tolist(),
    }


def grader_rows(grader, z, y, calibrations: Sequence[str] | None = None, f1_grades=None) -> list[dict]:
    """One metrics row per calibration (``None``: the grader's own; strings like ``"poly:3:0,2,3"``)."""
    from latentmed.latent.grader import calibration_name, parse_calibration

    f1_grades = list(grader.classes_) if f1_grades is None else list(f1_grades)
    variants = [grader] + [grader.recalibrate(**parse_calibration(c)) for c in (calibrations or [])
                           if calibration_name(grader) != c]
    distance = grader.signed_distance(z)
    rows = []
    for g in variants:
        rows.append(grading_metrics(y, distance, g.predict(z), negative=g.negative_, positive=g.positive_,
                                    f1_grades=f1_grades, scale=g.classes_,
                                    method=f"latent {g.classifier} + {calibration_name(g)}"))
    return rows


def markdown_table(rows: Sequence[dict], title: str = "") -> str:
    """Rows as a Markdown table (AUC, macro-F1, MAE, accuracy, n) followed by each confusion matrix."""
    lines = [f"## {title}", ""] if title else []
    if rows:
        grades = ",".join(str(g) for g in rows[0]["f1_grades"])
        lines += [f"| method | detection AUC | macro-F1 (grades {grades}) | MAE | accuracy | n |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['method']} | {r['detection_auc']:.3f} | {r['macro_f1']:.3f} | {r['mae']:.3f} | "
                         f"{r['accuracy']:.3f} | {r['n']} |")
    for r in rows:
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
