"""Pictures for zero-shot segmentation: label-map overlays and Dice-vs-parameter plots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from latentmed.viz.figure import pyplot, save_figure
from latentmed.viz.grid import save_image, to_uint8


def label_colors(n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct RGB colours (uint8 ``[n, 3]``) from matplotlib's tab20, cycled."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    order = np.random.default_rng(seed).permutation(20)
    return np.array([np.array(cmap(int(order[i % 20]))[:3]) * 255 for i in range(n)], dtype=np.uint8)


def overlay(image, labels: np.ndarray, alpha: float = 0.45, boundaries: bool = True) -> np.ndarray:
    """Blend a label map onto an image: ``image [C, H, W]`` in [-1, 1], ``labels [H, W]`` -> uint8 RGB ``[H, W, 3]``."""
    base = to_uint8(image)[0].astype(np.float32)
    if base.shape[-1] == 1:
        base = np.repeat(base, 3, axis=-1)
    labels = np.asarray(labels)
    colors = label_colors(int(labels.max()) + 1).astype(np.float32)
    out = (1 - alpha) * base + alpha * colors[labels]
    if boundaries:
        edge = np.zeros(labels.shape, dtype=bool)
        edge[:-1] |= labels[:-1] != labels[1:]
        edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
        out[edge] = 255
    return out.round().clip(0, 255).astype(np.uint8)


def save_overlay_panel(image, panels: Sequence[np.ndarray], path: str | os.PathLike, scale: int = 4) -> Path:
    """Save ``[image | overlay(panel) for each panel]`` side by side, upscaled ``scale`` times (nearest)."""
    gray = to_uint8(image)[0]
    gray = np.repeat(gray, 3, axis=-1) if gray.shape[-1] == 1 else gray
    tiles = [gray] + [overlay(image, p) for p in panels]
    pad = np.full((gray.shape[0], 2, 3), 255, dtype=np.uint8)
    row = np.concatenate([x for t in tiles for x in (t, pad)][:-1], axis=1)
    row = np.repeat(np.repeat(row, scale, 0), scale, 1)
    return save_image(row, path)


def plot_dice_curves(x: Sequence[float], curves: Mapping[str, Sequence[float]], path: str | os.PathLike, *,
                     xlabel: str, title: str = "", logx: bool = False,
                     baselines: Mapping[str, float] | None = None, segments: Sequence[float] | None = None) -> Path:
    """Dice (y) against one parameter (x), one line per structure; optional dashed baseline levels and
    the mean number of segments on a second (log) axis."""
    fig, ax = pyplot().subplots(figsize=(5, 3.6), dpi=120)
    for i, (name, ys) in enumerate(curves.items()):
        line, = ax.plot(list(x), list(ys), marker="o", label=name)
        if baselines and name in baselines:
            ax.axhline(baselines[name], ls="--", lw=1, color=line.get_color(), alpha=0.7)
    if logx:
        ax.set_xscale("log")
        ax.minorticks_off()
    ax.set_xticks(list(x))
    ax.set_xticklabels([f"{v:g}" for v in x], fontsize=7, rotation=45 if len(x) > 6 else 0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Dice")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title + (" (dashed: KMeans baseline)" if baselines else ""), fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    if segments is not None:
        ax2 = ax.twinx()
        ax2.plot(list(x), list(segments), ls=":", color="grey", marker=".")
        ax2.set_yscale("log")
        ax2.set_ylabel("segments per image (dotted)", color="grey", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
