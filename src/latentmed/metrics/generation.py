"""Sample-quality metrics of generative models on feature vectors: precision/recall, FID, memorisation.

* :func:`precision_recall`: improved precision and recall of Kynkaenniemi et al. (NeurIPS 2019,
  "Improved Precision and Recall Metric for Assessing Generative Models", Sec. 2): each set
  estimates its manifold as the union of balls around its points, each ball reaching the point's
  k-th nearest neighbour in the same set (k = 3 in the paper). Precision is the fraction of
  generated points inside the real manifold (do samples look real?); recall the fraction of real
  points inside the generated manifold (do samples cover the data?). A point on a ball's
  boundary counts as inside (``<=``, as in the authors' ``precision_recall.py``).
* :func:`frechet_feature_distance`: FID on precomputed features (the Frechet distance of
  :mod:`latentmed.metrics.fid` between the two feature sets' Gaussians).
* :func:`nearest_neighbour_distances` and :func:`memorisation`: how close samples come to the
  training set compared with held-out real images (a model that copies its training images puts
  samples nearer to them than fresh real images are).
* :class:`PixelPCA`: a feature extractor that needs no download: the flattened pixels projected
  on the top principal components of the training images (scikit-learn's ``PCA``, not
  whitened, so Euclidean distances are pixel distances within the kept subspace).

Features are ``[N, F]`` tensors or arrays; distances are Euclidean, computed in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from latentmed.errors import LatentmedError
from latentmed.metrics._base import as_tensor
from latentmed.metrics.fid import feature_statistics, frechet_distance

__all__ = ["knn_radii", "precision_recall", "frechet_feature_distance", "nearest_neighbour_distances",
           "memorisation", "PixelPCA"]


def _features(x: Any, name: str) -> torch.Tensor:
    f = as_tensor(x, name)
    if f.ndim != 2 or f.shape[0] == 0:
        raise LatentmedError(f"{name} has shape {tuple(f.shape)}: expected features [N, F] with N >= 1 "
                             "(flatten images with x.flatten(1) or use a feature extractor).")
    return f.detach().double().cpu()


def _check_dims(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    if a.shape[1] != b.shape[1]:
        raise LatentmedError(f"{names[0]} has {a.shape[1]} features but {names[1]} has {b.shape[1]}; "
                             "use the same feature extractor for both.")


def knn_radii(features: Any, k: int = 3, *, batch_size: int = 1024) -> torch.Tensor:
    """Distance of each point to its ``k``-th nearest *other* point of the same set, ``[N]``.

    Duplicates count as neighbours at distance 0. Needs ``N > k``.
    """
    f = _features(features, "features")
    k = int(k)
    if k < 1 or f.shape[0] <= k:
        raise LatentmedError(f"k={k}: the k-NN radius needs 1 <= k < N, and the set has N={f.shape[0]} points.")
    out = []
    for chunk in f.split(int(batch_size)):
        d = torch.cdist(chunk, f)
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])  # index 0 is the point itself (0)
    return torch.cat(out)


def _inside_any_ball(query: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor,
                     batch_size: int) -> torch.Tensor:
    hits = []
    for chunk in query.split(int(batch_size)):
        hits.append((torch.cdist(chunk, centres) <= radii[None]).any(1))
    return torch.cat(hits)


def precision_recall(real: Any, generated: Any, k: int = 3, *, batch_size: int = 1024) -> dict[str, float]:
    """Improved precision and recall (Kynkaenniemi et al. 2019, eqs. 1-2) of ``generated`` against ``real``.

    ``precision = mean_g 1[exists r: ||g - r|| <= NN_k(r, real)]``,
    ``recall    = mean_r 1[exists g: ||r - g|| <= NN_k(g, generated)]``.
    Both sets ``[N, F]`` need more than ``k`` points; compare runs at equal set sizes (the radii
    shrink as a set grows).
    """
    r, g = _features(real, "real"), _features(generated, "generated")
    _check_dims(r, g, ("real", "generated"))
    precision = _inside_any_ball(g, r, knn_radii(r, k, batch_size=batch_size), batch_size)
    recall = _inside_any_ball(r, g, knn_radii(g, k, batch_size=batch_size), batch_size)
    return {"precision": float(precision.double().mean()), "recall": float(recall.double().mean())}


def frechet_feature_distance(real: Any, generated: Any) -> float:
    """FID between two feature sets ``[N, F]``: :func:`~latentmed.metrics.fid.frechet_distance` of their moments."""
    r, g = _features(real, "real"), _features(generated, "generated")
    _check_dims(r, g, ("real", "generated"))
    return float(frechet_distance(*feature_statistics(r), *feature_statistics(g)))


def nearest_neighbour_distances(query: Any, reference: Any, *, batch_size: int = 1024) -> torch.Tensor:
    """Euclidean distance of each query point to its nearest reference point, ``[N_query]``."""
    q, ref = _features(query, "query"), _features(reference, "reference")
    _check_dims(q, ref, ("query", "reference"))
    return torch.cat([torch.cdist(chunk, ref).min(1).values for chunk in q.split(int(batch_size))])


def memorisation(samples: Any, heldout: Any, train: Any, *, quantile: float = 0.05) -> dict[str, float]:
    """Nearest-training-image distances of samples against those of held-out real images.

    Returns ``nn_sample`` and ``nn_heldout`` (medians of the distance to the nearest training
    point), ``nn_ratio = nn_sample / nn_heldout`` (about 1 or more: no copying; well below 1:
    samples sit on training images), ``copy_fraction``: the fraction of samples nearer to the
    training set than the ``quantile`` of the held-out distances (about ``quantile`` without
    memorisation), and ``far_fraction``: the fraction farther than the ``1 - quantile`` quantile
    (about ``quantile`` when samples are as close to the data as new real images; more: samples
    off the data, e.g. broken ones).
    """
    if not 0 < quantile < 1:
        raise LatentmedError(f"quantile={quantile}: expected a number in (0, 1).")
    d_s = nearest_neighbour_distances(samples, train)
    d_h = nearest_neighbour_distances(heldout, train)
    med_s, med_h = float(d_s.median()), float(d_h.median())
    low, high = (float(torch.quantile(d_h, q)) for q in (float(quantile), 1 - float(quantile)))
    return {"nn_sample": med_s, "nn_heldout": med_h, "nn_ratio": med_s / med_h if med_h > 0 else float("nan"),
            "copy_fraction": float((d_s < low).double().mean()), "far_fraction": float((d_s > high).double().mean())}


class PixelPCA:
    """Features = flattened pixels projected on the top ``n_components`` principal axes of ``fit``'s images.

    A fixed, documented extractor that needs no download (for FID and precision/recall next to
    the DAE's own z_sem). Not whitened: distances are pixel distances in the kept subspace.
    ``n_components`` is capped at ``min(N, pixels)`` of the fitting set.
    """

    def __init__(self, n_components: int = 64, random_state: int = 0) -> None:
        if int(n_components) < 1:
            raise LatentmedError(f"n_components={n_components}: expected a positive integer.")
        self.n_components = int(n_components)
        self.random_state = random_state

    def fit(self, images: Any) -> "PixelPCA":
        from sklearn.decomposition import PCA

        x = _features(as_tensor(images, "images").flatten(1), "images").numpy()
        if x.shape[0] < 2:
            raise LatentmedError(f"PixelPCA.fit needs at least 2 images, got {x.shape[0]}.")
        self.pca_ = PCA(n_components=min(self.n_components, *x.shape), svd_solver="full",
                        random_state=self.random_state).fit(x)
        self.shape_ = tuple(as_tensor(images, "images").shape[1:])
        return self

    def __call__(self, images: Any) -> torch.Tensor:
        if not hasattr(self, "pca_"):
            raise LatentmedError("PixelPCA is not fitted; call fit(training_images) first.")
        x = as_tensor(images, "images")
        if tuple(x.shape[1:]) != self.shape_:
            raise LatentmedError(f"images of shape {tuple(x.shape[1:])}; PixelPCA was fitted on {self.shape_}.")
        return torch.from_numpy(self.pca_.transform(x.detach().double().cpu().flatten(1).numpy()))

    @property
    def explained_variance_ratio(self) -> float:
        """Fraction of the training images' pixel variance the kept components explain."""
        return float(np.sum(self.pca_.explained_variance_ratio_))
