"""Latent-space pictures: t-SNE scatter, confusion matrix, distance-to-grade calibration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from latentmed.viz.figure import pyplot, save_figure


def spinal_order(values) -> list | None:
    """``values`` sorted cranial to caudal if all are spinal levels (C1..C7, T1..T12, L1..L5, S1..), else None."""
    import re

    region = {"C": 0, "T": 1, "L": 2, "S": 3}
    keys = []
    for v in values:
        m = re.fullmatch(r"([CTLS])(\d+)", str(v).strip().upper())
        if m is None:
            return None
        keys.append((region[m.group(1)], int(m.group(2))))
    return [v for _, v in sorted(zip(keys, values), key=lambda kv: kv[0])]


def save_scatter(embedding: np.ndarray, labels: Sequence, path: str | os.PathLike, title: str = "",
                 label_name: str = "label") -> Path:
    """2-D scatter (e.g. t-SNE of z_sem) coloured by a label column.

    Numbers and spinal levels (C1..C7, T1..T12, L1..L5, S1.., in anatomical order, cranial first) get an
    ordered colour map (``turbo``), so neighbouring levels get neighbouring colours; other labels get
    distinct categorical colours.
    """
    plt = pyplot()
    labels = np.asarray(labels)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    values = np.unique(labels)
    levels = spinal_order(values)
    ordered = levels is not None or np.issubdtype(labels.dtype, np.number)
    values = levels if levels is not None else values
    n = max(len(values), 2)
    if ordered:
        cmap = plt.get_cmap("turbo")
        colours = [cmap(0.05 + 0.9 * i / (n - 1)) for i in range(len(values))]
    else:
        cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
        colours = [cmap(i % cmap.N) for i in range(len(values))]
    for v, colour in zip(values, colours):
        m = labels == v
        ax.scatter(embedding[m, 0], embedding[m, 1], s=12, color=colour, label=str(v), alpha=0.9)
    ax.legend(title=label_name, fontsize=7, markerscale=1.2, loc="best", ncol=1 + len(values) // 10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path, dpi=110, tight=True)


def save_confusion(matrix, scale: Sequence[int], path: str | os.PathLike, title: str = "") -> Path:
    """Confusion matrix heat map (rows: true grade, columns: predicted) with counts."""
    plt = pyplot()
    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(scale), 0.8 + 0.7 * len(scale)))
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > m.max() / 2 else "black", fontsize=9)
    ax.set_xticks(range(len(scale)), [f"G{g}" for g in scale])
    ax.set_yticks(range(len(scale)), [f"G{g}" for g in scale])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path, dpi=110, tight=True)


def save_calibration(distances, grades, curves: Mapping[str, Callable[[np.ndarray], np.ndarray] | tuple],
                     path: str | os.PathLike) -> Path:
    """Signed distance of each sample against its true grade, with calibration curves.

    ``curves``: ``{name: g = p(d)}`` as a function, or as sampled points ``(d_values, g_values)``.
    """
    plt = pyplot()
    d = np.asarray(distances, dtype=np.float64)
    g = np.asarray(grades)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    rng = np.random.default_rng(0)
    ax.scatter(d, g + rng.uniform(-0.12, 0.12, len(g)), s=8, alpha=0.5, color="gray", label="samples")
    xs = np.linspace(d.min() - 0.1 * np.ptp(d), d.max() + 0.1 * np.ptp(d), 200)
    for name, curve in curves.items():
        ax.plot(*((xs, curve(xs)) if callable(curve) else curve), label=name)
    ax.axvline(0.0, color="k", lw=0.5, ls="--")
    ax.set_xlabel("signed distance to the hyperplane")
    ax.set_ylabel("grade")
    ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=110, tight=True)
