"""Reference segmenters for scoring DiffSeg at a fixed number of segments K.

- :func:`kmeans_baseline` with ``features="intensity"``: KMeans on pixel intensities (cannot tell the
  left lung from the right: they have the same grey values);
- ``features="intensity_xy"``: KMeans on standardised intensity plus standardised pixel coordinates
  (a position-aware SLIC-like baseline);
- :func:`grid_baseline`: an image-blind ``rows x cols`` grid with ``rows * cols = K`` (the floor any
  image-dependent method must beat).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from latentmed.errors import LatentmedError

FEATURES = ("intensity", "intensity_xy")


def kmeans_baseline(images: torch.Tensor, k: int | Sequence[int] = 4, seed: int = 0,
                    features: str = "intensity", xy_weight: float = 1.0) -> list[torch.Tensor]:
    """KMeans (scikit-learn) per image -> one ``[H, W]`` label map each.

    ``k``: one cluster count or one per image. ``features="intensity_xy"`` clusters
    ``[I / std(I), w x / std(x), w y / std(y)]`` with ``w = xy_weight``.
    """
    from sklearn.cluster import KMeans

    if features not in FEATURES:
        raise LatentmedError(f"features={features!r}: expected one of {FEATURES}.")
    ks = [k] * len(images) if np.isscalar(k) else list(k)
    if len(ks) != len(images):
        raise LatentmedError(f"{len(ks)} cluster counts for {len(images)} images; give one k or one per image.")
    out = []
    for img, kk in zip(images, ks):
        h, w = img.shape[-2:]
        x = img.float().mean(0).reshape(-1, 1).numpy().astype(np.float64)
        if features == "intensity_xy":
            yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            pos = np.stack([yy.ravel(), xx.ravel()], 1).astype(np.float64)
            pos = xy_weight * (pos - pos.mean(0)) / pos.std(0).clip(1e-12)
            x = np.concatenate([(x - x.mean()) / max(x.std(), 1e-12), pos], 1)
        kk = int(min(kk, len(np.unique(x, axis=0))))
        labels = KMeans(n_clusters=max(kk, 1), n_init=4, random_state=seed).fit(x).labels_
        out.append(torch.as_tensor(labels.reshape(h, w)))
    return out


def grid_shape(k: int) -> tuple[int, int]:
    """``(rows, cols)`` with ``rows * cols = k``, as square as possible, ``cols >= rows``."""
    if int(k) < 1:
        raise LatentmedError(f"k={k}: expected a positive number of segments.")
    rows = max(r for r in range(1, int(np.sqrt(k)) + 1) if k % r == 0)
    return rows, int(k) // rows


def grid_baseline(shape: tuple[int, int], k: int) -> torch.Tensor:
    """An image-blind ``[H, W]`` label map: :func:`grid_shape` ``(rows, cols)`` equal cells, ids ``0..k-1``."""
    rows, cols = grid_shape(k)
    h, w = shape
    r = np.minimum(np.arange(h) * rows // h, rows - 1)
    c = np.minimum(np.arange(w) * cols // w, cols - 1)
    return torch.as_tensor(r[:, None] * cols + c[None, :])


__all__ = ["FEATURES", "grid_baseline", "grid_shape", "kmeans_baseline"]
