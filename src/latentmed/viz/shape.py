"""Pictures for 3D shape refinement: mid-slices in three planes with coloured differences, latent variance.

Colours in the difference panels (against the truth): white = both foreground (TP),
red = predicted but not in the truth (FP), blue = in the truth but missed (FN).
With a part-label map of the truth (``parts``, e.g. the spine3d phantom's ``parts/`` maps) the
panels show anatomy instead: each true voxel in its part's colour, bright where the prediction
has it (TP), dark where it misses it (FN); red = FP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from latentmed.errors import expect
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


# Part colours (labels 1..6 of the spine3d phantom: body, pedicle, lamina, spinous, transverse, articular).
PART_COLOURS = np.array([(0, 0, 0), (200, 200, 200), (250, 200, 40), (60, 200, 90), (40, 200, 230),
                         (180, 110, 250), (250, 130, 200)], dtype=np.uint8)
MISSED_BRIGHTNESS = 0.3


def parts_rgb(parts: np.ndarray, pred: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 image of a part-label slice: each part in its colour (:data:`PART_COLOURS`).

    With ``pred``: true voxels the prediction has keep their colour (TP), true voxels it misses are
    dimmed to 30% (FN), predicted background is red (FP).
    """
    expect(parts.min() >= 0 and parts.max() < len(PART_COLOURS),
           f"parts: expected labels 0..{len(PART_COLOURS) - 1}, got {parts.min()}..{parts.max()}.")
    rgb = PART_COLOURS[parts.astype(np.int64)].copy()
    if pred is not None:
        pred, truth = pred.astype(bool), parts > 0
        rgb[truth & ~pred] = (rgb[truth & ~pred] * MISSED_BRIGHTNESS).astype(np.uint8)
        rgb[~truth & pred] = (230, 40, 40)
    return rgb


def save_refinement_figure(truth: np.ndarray, volumes: Mapping[str, np.ndarray], path: str | Path,
                           title: str | None = None, parts: np.ndarray | None = None,
                           part_names: Mapping[int, str] | None = None) -> Path:
    """One row per volume (e.g. input, VAE, LEBM, LSD-EBM) plus the truth; columns = the 3 planes.

    Rows other than the truth show the differences to the truth in colour; with ``parts`` (the
    truth's part labels, same grid) in per-part colours (:func:`parts_rgb`) with a legend of
    ``part_names`` (``{label: name}``).
    """
    from scipy import ndimage

    plt = pyplot()
    if parts is not None:
        expect(parts.shape == truth.shape, f"parts: expected the truth's shape {truth.shape}, got {parts.shape}.")

    centre = np.round(ndimage.center_of_mass(truth)).astype(int) if truth.any() else None
    rows = [("truth", truth)] + list(volumes.items())
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.4 * len(rows)), squeeze=False)
    for r, (name, vol) in enumerate(rows):
        truth_slices = mid_slices(truth, centre)
        part_slices = mid_slices(parts, centre) if parts is not None else None
        for c, sl in enumerate(mid_slices(vol, centre)):
            ax = axes[r, c]
            if part_slices is not None:
                img = parts_rgb(part_slices[c], None if name == "truth" else sl)
            elif name == "truth":
                img = np.repeat((sl.astype(np.uint8) * 255)[..., None], 3, -1)
            else:
                img = difference_rgb(truth_slices[c], sl)
            ax.imshow(np.flipud(img), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(PLANES[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    if parts is not None:
        from matplotlib.patches import Patch

        names = part_names or {k: f"part {k}" for k in range(1, len(PART_COLOURS))}
        present = [k for k in sorted(names) if (parts == k).any()]
        handles = [Patch(color=PART_COLOURS[k] / 255, label=names[k]) for k in present]
        handles.append(Patch(color=(230 / 255, 40 / 255, 40 / 255), label="false positive"))
        fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False)
        default = "part colours; dark = missed, red = false positive"
    else:
        default = "white: agree, red: false positive, blue: false negative"
    fig.suptitle(title or default, fontsize=9)
    # leave room for the legend below and the title above (about one inch each)
    height = 2.4 * len(rows)
    fig.tight_layout(rect=(0, 0.5 / height if parts is not None else 0, 1, 1 - 0.45 / height))
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
