"""Pictures for 3D shape refinement: mid-slices in three planes with coloured differences, latent variance.

Colours in the difference panels (against the truth): white = both foreground (TP),
red = predicted but not in the truth (FP), blue = in the truth but missed (FN).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from latentmed.viz.figure import pyplot, save_figure

PLANES = ("axial (axis 0)", "coronal (axis 1)", "sagittal (axis 2)")


def mid_slices(volume: np.ndarray, centre: Sequence[int] | None = None) -> list[np.ndarray]:
    """The three orthogonal slices through ``centre`` (default: the cube centre)."""
    c = [s // 2 for s in volume.shape] if centre is None else list(centre)
    return [volume[c[0]], volume[:, c[1]], volume[:, :, c[2]]]


def difference_rgb(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """RGB uint8 image: TP white, FP red, FN blue, TN black."""
    truth, pred = truth.astype(bool), pred.astype(bool)
    rgb = np.zeros((*truth.shape, 3), dtype=np.uint8)
    rgb[truth & pred] = (255, 255, 255)
    rgb[~truth & pred] = (230, 40, 40)
    rgb[truth & ~pred] = (40, 90, 240)
    return rgb


def save_refinement_figure(truth: np.ndarray, volumes: Mapping[str, np.ndarray], path: str | Path,
                           title: str | None = None) -> Path:
    """One row per volume (e.g. input, VAE, LEBM, LSD-EBM) plus the truth; columns = the 3 planes.

    Rows other than the truth show the differences to the truth in colour.
    """
    from scipy import ndimage

    plt = pyplot()

    centre = np.round(ndimage.center_of_mass(truth)).astype(int) if truth.any() else None
    rows = [("truth", truth)] + list(volumes.items())
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.4 * len(rows)), squeeze=False)
    for r, (name, vol) in enumerate(rows):
        truth_slices = mid_slices(truth, centre)
        for c, sl in enumerate(mid_slices(vol, centre)):
            ax = axes[r, c]
            img = np.repeat((sl.astype(np.uint8) * 255)[..., None], 3, -1) if name == "truth" else \
                difference_rgb(truth_slices[c], sl)
            ax.imshow(np.flipud(img), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(PLANES[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.suptitle(title or "white: agree, red: false positive, blue: false negative", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def save_latent_variance_plot(traces: Mapping[str, Sequence[tuple[int, float]]], path: str | Path) -> Path:
    """Mean latent variance against the reverse step (paper's Fig. 5); one line per model."""
    fig, ax = pyplot().subplots(figsize=(5, 3.5))
    for name, trace in traces.items():
        steps, values = zip(*trace) if trace else ((), ())
        ax.plot(steps, values, marker="o", label=name)
    ax.invert_xaxis()
    ax.set_xlabel("reverse step t (from t to 0)")
    ax.set_ylabel("mean latent variance")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
