"""Counterfactual strips: original, reconstruction, counterfactuals by grade, signed difference maps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from latentmed.viz.figure import pyplot, save_figure


def _to_display(img: np.ndarray) -> np.ndarray:
    """``[C, H, W]`` in [-1, 1] -> ``[H, W]`` (gray) or ``[H, W, 3]`` in [0, 1]."""
    img = np.clip((np.asarray(img, dtype=np.float32) + 1.0) / 2.0, 0.0, 1.0)
    return img[0] if img.shape[0] == 1 else img[:3].transpose(1, 2, 0)


def signed_difference(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Per-pixel intensity change ``after - before`` (channel mean): > 0 where intensity appears."""
    return (np.asarray(after, dtype=np.float32) - np.asarray(before, dtype=np.float32)).mean(axis=0)


def save_counterfactual_strip(path: str | os.PathLike, original: np.ndarray, reconstruction: np.ndarray,
                              counterfactuals: np.ndarray, labels: Sequence[str], title: str | None = None,
                              dpi: int = 100) -> Path:
    """Two-row PNG: top original | reconstruction | counterfactuals (labelled); bottom signed differences.

    Differences are taken against the reconstruction (same ``x_T``), so they show only what moving the
    latent changed: red where intensity appears, blue where it goes (``bwr``, one symmetric scale shared
    by the counterfactuals). Under the reconstruction: reconstruction - original (the autoencoder's own
    error, on its own scale so that it does not hide small edits).
    """
    plt = pyplot()
    counterfactuals = np.asarray(counterfactuals)
    cols = 2 + len(counterfactuals)
    diffs = [signed_difference(reconstruction, original)] + [signed_difference(c, reconstruction) for c in counterfactuals]
    # own scales: the autoencoder's error would otherwise hide small counterfactual edits
    vmax_rec = max(1e-6, float(np.abs(diffs[0]).max()))
    vmax = max(1e-6, max((float(np.abs(d).max()) for d in diffs[1:]), default=0.0))
    fig, axes = plt.subplots(2, cols, figsize=(1.6 * cols, 3.6), squeeze=False)
    top = [("original", original), ("reconstruction", reconstruction)] + list(zip(labels, counterfactuals))
    for j, (label, img) in enumerate(top):
        axes[0, j].imshow(_to_display(img), cmap="gray", vmin=0, vmax=1)
        axes[0, j].set_title(label, fontsize=9)
    axes[1, 0].text(0.5, 0.5, f"red: appears\nblue: goes\nscale ±{vmax:.3g}\n(recon ±{vmax_rec:.3g})",
                    ha="center", va="center", fontsize=8)
    im = None
    for j, d in enumerate(diffs, start=1):
        v = vmax_rec if j == 1 else vmax
        shown = axes[1, j].imshow(d, cmap="bwr", vmin=-v, vmax=v)
        im = shown if j > 1 else im
        axes[1, j].set_title("recon - orig" if j == 1 else f"{labels[j - 2]} - recon", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
    if im is not None:
        fig.colorbar(im, ax=axes[1, :].tolist(), fraction=0.02, pad=0.01)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, dpi=dpi)
