"""Binary segmentation metrics, 2D and 3D, from one pass of confusion counts.

Definitions follow MISeval (Mueller et al., 2022), with TP/FP/FN/TN counted per sample:

* Dice ``DSC = 2TP / (2TP + FP + FN)``
* volumetric similarity ``VS = 1 - |FN - FP| / (2TP + FP + FN)``
* sensitivity ``SEN = TP / (TP + FN)``, specificity ``SPEC = TN / (TN + FP)``
* normalised mutual information ``NMI = 2 I(G; P) / (H(G) + H(P))`` (scikit-learn's
  ``normalized_mutual_info_score`` with its default arithmetic averaging)
* Cohen's kappa ``(p_o - p_e) / (1 - p_e)``
* Hausdorff-95: the larger of the two directed 95th percentiles of surface distances
  (MONAI's ``compute_hausdorff_distance(percentile=95)``), in units of ``spacing``.

**Argument order is (truth, pred)** everywhere. This matters for the asymmetric metrics:
the LSD-EBM reference code called them as (pred, truth), so what it reported as
sensitivity and specificity were really precision ``TP/(TP+FP)`` and negative predictive
value ``TN/(TN+FN)``.

**Batch first**, like every metric of :mod:`latentmed.metrics`: the inputs are batches
``[B, H, W]`` (2D) or ``[B, D, H, W]`` (3D); a channel axis of size 1 (``[B, 1, H, W]``,
``[B, 1, D, H, W]``) is dropped. Every function returns per-sample values ``[B]``. For one mask
add the batch axis (``dice(truth[None], pred[None])[0]``): a 3D mask ``[D, H, W]`` passed
without it would be read as D two-dimensional masks. Inputs are torch tensors (any device) or
numpy arrays, boolean or with values in {0, 1}; results are float64 tensors on the input's
device. The accumulating classes are ``torchmetrics.Metric`` subclasses whose per-sample values
are gathered across DDP ranks.

**Empty masks** (no foreground in truth and/or prediction) get these documented values:

* both empty: Dice 1, VS 1, NMI 1, kappa 1, Hausdorff-95 0 (perfect agreement);
* sensitivity is 1 when the truth has no foreground (nothing to miss), specificity is 1
  when the truth has no background; the other metric still penalises the errors;
* NMI is 1 when both masks are constant (scikit-learn's convention), 0 when exactly one is;
* kappa is 1 when both masks are the same constant (scikit-learn returns NaN there);
* Hausdorff-95 is ``inf`` when exactly one mask is empty (MONAI returns inf/NaN).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from latentmed.errors import LatentmedError
from latentmed.metrics._base import PerSampleMean, as_tensor

__all__ = [
    "confusion_counts",
    "segmentation_scores",
    "dice",
    "volumetric_similarity",
    "sensitivity",
    "specificity",
    "nmi",
    "cohen_kappa",
    "hausdorff95",
    "SEGMENTATION_METRICS",
    "SegmentationScores",
    "Dice",
    "VolumetricSimilarity",
    "Sensitivity",
    "Specificity",
    "NMI",
    "CohenKappa",
    "Hausdorff95",
]

SEGMENTATION_METRICS = ("dice", "volumetric_similarity", "sensitivity", "specificity", "nmi", "cohen_kappa")


def _binary(x: Any, name: str) -> torch.Tensor:
    t = as_tensor(x, name)
    if t.dtype == torch.bool:
        return t
    if t.is_complex() or t.dtype not in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                                         torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise LatentmedError(f"{name}: expected a binary mask (bool or 0/1 values), got dtype {t.dtype}.")
    if t.numel() and ((t != 0) & (t != 1)).any():
        values = torch.unique(t.flatten()[:100000])[:6].tolist()
        raise LatentmedError(
            f"{name}: expected a binary mask with values in {{0, 1}}, found values such as {values}. "
            "Threshold probabilities first (e.g. mask = prob > 0.5) or select one label (mask = labels == k)."
        )
    return t != 0


def _pair(truth: Any, pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Batches of binary masks ``[B, *spatial]`` (2D or 3D; a channel axis of size 1 dropped)."""
    t = _binary(truth, "truth")
    p = _binary(pred, "pred")
    if t.shape != p.shape:
        raise LatentmedError(
            f"truth has shape {tuple(t.shape)} but pred has shape {tuple(p.shape)}; they must match "
            "(same dimensionality, 2D or 3D, and the same size). Resample the prediction onto the truth's grid."
        )
    if t.ndim in (4, 5) and t.shape[1] == 1:
        t, p = t[:, 0], p[:, 0]
    if t.ndim not in (3, 4):
        raise LatentmedError(
            f"masks of shape {tuple(t.shape)}: expected a batch [B, H, W] (2D) or [B, D, H, W] (3D), "
            "optionally with a channel axis of size 1; for one mask add the batch axis: mask[None].")
    if p.device != t.device:
        p = p.to(t.device)
    if t.shape[0] == 0:
        raise LatentmedError("empty batch: truth and pred have batch size 0.")
    return t, p


def confusion_counts(truth: Any, pred: Any) -> dict[str, torch.Tensor]:
    """Per-sample ``tp``, ``fp``, ``fn``, ``tn`` (int64, ``[B]``) of batches of binary masks, in one pass."""
    t, p = _pair(truth, pred)
    t = t.reshape(t.shape[0], -1)
    p = p.reshape(p.shape[0], -1)
    tp = (t & p).sum(1)
    t_sum = t.sum(1)
    p_sum = p.sum(1)
    n = torch.full_like(tp, t.shape[1])
    fp = p_sum - tp
    fn = t_sum - tp
    tn = n - tp - fp - fn
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _safe_div(num: torch.Tensor, den: torch.Tensor, empty_value: float) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, empty_value))


def _xlogx_terms(p_joint: torch.Tensor, p_row: torch.Tensor, p_col: torch.Tensor) -> torch.Tensor:
    # p * log(p / (p_row * p_col)) with 0 log 0 = 0
    ratio = p_joint / (p_row * p_col).clamp_min(1e-300)
    return torch.where(p_joint > 0, p_joint * torch.log(ratio.clamp_min(1e-300)), torch.zeros_like(p_joint))


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -torch.where(p > 0, p * torch.log(p.clamp_min(1e-300)), torch.zeros_like(p))


def _scores_from_counts(c: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    tp, fp, fn, tn = (c[k].double() for k in ("tp", "fp", "fn", "tn"))
    n = tp + fp + fn + tn
    overlap_den = 2 * tp + fp + fn
    dsc = _safe_div(2 * tp, overlap_den, 1.0)
    vs = torch.where(overlap_den > 0, 1 - (fn - fp).abs() / overlap_den.clamp_min(1e-300), torch.ones_like(tp))
    sen = _safe_div(tp, tp + fn, 1.0)
    spec = _safe_div(tn, tn + fp, 1.0)

    # NMI over the 2x2 contingency table (truth rows, pred columns)
    p11, p10, p01, p00 = tp / n, fn / n, fp / n, tn / n
    t1, t0 = p11 + p10, p01 + p00
    q1, q0 = p11 + p01, p10 + p00
    mi = (_xlogx_terms(p11, t1, q1) + _xlogx_terms(p10, t1, q0)
          + _xlogx_terms(p01, t0, q1) + _xlogx_terms(p00, t0, q0))
    h_t = _entropy(t1) + _entropy(t0)
    h_p = _entropy(q1) + _entropy(q0)
    both_constant = (h_t == 0) & (h_p == 0)
    nmi_v = torch.where(both_constant, torch.ones_like(mi),
                        (2 * mi / (h_t + h_p).clamp_min(1e-300)).clamp(0.0, 1.0))

    p_o = p11 + p00
    p_e = t1 * q1 + t0 * q0
    kappa = torch.where(p_e < 1, (p_o - p_e) / (1 - p_e).clamp_min(1e-300), torch.ones_like(p_o))
    return {"dice": dsc, "volumetric_similarity": vs, "sensitivity": sen, "specificity": spec,
            "nmi": nmi_v, "cohen_kappa": kappa}


def segmentation_scores(truth: Any, pred: Any, *, hausdorff: bool = False,
                        spacing: float | Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """All overlap metrics (Dice, VS, SEN, SPEC, NMI, kappa) from one confusion-count pass.

    Args:
        truth: ground-truth masks ``[B, H, W]`` or ``[B, D, H, W]`` (see the module docstring).
        pred: predicted masks of the same shape. Order is (truth, pred).
        hausdorff: also compute ``hausdorff95`` (slower: one KD-tree per sample on the CPU).
        spacing: voxel size for Hausdorff-95 (one number or one per spatial axis).

    Returns:
        ``{name: [B] tensor}`` with keys :data:`SEGMENTATION_METRICS` (plus ``hausdorff95``).
    """
    out = _scores_from_counts(confusion_counts(truth, pred))
    if hausdorff:
        out["hausdorff95"] = hausdorff95(truth, pred, spacing=spacing)
    return out


def _one(name: str):
    def metric(truth: Any, pred: Any) -> torch.Tensor:
        return _scores_from_counts(confusion_counts(truth, pred))[name]

    return metric


dice = _one("dice")
dice.__name__ = dice.__qualname__ = "dice"
dice.__doc__ = """Dice similarity coefficient ``2TP / (2TP + FP + FN)``; 1 when both masks are empty.

``dice(truth, pred)`` on batches ``[B, *spatial]`` -> ``[B]``. Symmetric in its arguments."""

volumetric_similarity = _one("volumetric_similarity")
volumetric_similarity.__name__ = volumetric_similarity.__qualname__ = "volumetric_similarity"
volumetric_similarity.__doc__ = """Volumetric similarity ``1 - |FN - FP| / (2TP + FP + FN)`` (MISeval); 1 when both are empty.

Compares volumes only (1 when |P| = |G|, whatever the overlap). Order (truth, pred)."""

sensitivity = _one("sensitivity")
sensitivity.__name__ = sensitivity.__qualname__ = "sensitivity"
sensitivity.__doc__ = """Sensitivity (recall, true positive rate) ``TP / (TP + FN)``; 1 when the truth is empty.

Order matters: ``sensitivity(truth, pred)``. Swapping the arguments gives precision."""

specificity = _one("specificity")
specificity.__name__ = specificity.__qualname__ = "specificity"
specificity.__doc__ = """Specificity (true negative rate) ``TN / (TN + FP)``; 1 when the truth has no background.

Order matters: ``specificity(truth, pred)``. Swapping the arguments gives the negative
predictive value."""

nmi = _one("nmi")
nmi.__name__ = nmi.__qualname__ = "nmi"
nmi.__doc__ = """Normalised mutual information ``2 I(G; P) / (H(G) + H(P))`` of the two binary labelings.

Equals scikit-learn's ``normalized_mutual_info_score`` (arithmetic mean). Invariant to
swapping the labels (an inverted prediction scores 1). 1 when both masks are constant."""

cohen_kappa = _one("cohen_kappa")
cohen_kappa.__name__ = cohen_kappa.__qualname__ = "cohen_kappa"
cohen_kappa.__doc__ = """Cohen's kappa ``(p_o - p_e) / (1 - p_e)`` of voxel labels (scikit-learn's ``cohen_kappa_score``).

1 when both masks are the same constant (scikit-learn returns NaN there)."""


def _edges(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    return mask & ~binary_erosion(mask, border_value=0)


def _hd95_one(t: np.ndarray, p: np.ndarray, spacing: np.ndarray, percentile: float) -> float:
    from scipy.spatial import cKDTree

    if not t.any() and not p.any():
        return 0.0
    if not t.any() or not p.any():
        return float("inf")
    et = np.argwhere(_edges(t)) * spacing
    ep = np.argwhere(_edges(p)) * spacing
    d_pt = cKDTree(et).query(ep, k=1)[0]
    d_tp = cKDTree(ep).query(et, k=1)[0]
    return float(max(np.percentile(d_pt, percentile), np.percentile(d_tp, percentile)))


def hausdorff95(truth: Any, pred: Any, *, spacing: float | Sequence[float] | None = None,
                percentile: float = 95.0) -> torch.Tensor:
    """Symmetric percentile Hausdorff distance between the mask surfaces (MONAI's definition).

    Surfaces are the foreground voxels removed by one binary erosion (image border counts as
    background). The result is ``max(P95 d(pred->truth), P95 d(truth->pred))`` in units of
    ``spacing`` (voxels by default), per sample ``[B]``. 0 when both masks are empty, ``inf``
    when one is.
    """
    t, p = _pair(truth, pred)
    spatial = t.ndim - 1
    if spacing is None:
        sp = np.ones(spatial)
    else:
        sp = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (spatial,)) if np.ndim(spacing) == 0 \
            else np.asarray(spacing, dtype=np.float64)
        if sp.shape != (spatial,):
            raise LatentmedError(f"spacing {spacing!r}: expected one number or {spatial} numbers "
                                 f"(one per spatial axis of masks shaped {tuple(t.shape[1:])}).")
    tn, pn = t.cpu().numpy(), p.cpu().numpy()
    values = torch.tensor([_hd95_one(tn[i], pn[i], sp, percentile) for i in range(tn.shape[0])],
                          dtype=torch.float64, device=t.device)
    return values


class SegmentationScores(PerSampleMean):
    """Accumulating :func:`segmentation_scores`: ``update(truth, pred)`` per batch, ``compute()`` -> means.

    >>> m = SegmentationScores()
    >>> for truth, pred in loader: m.update(truth, pred)   # doctest: +SKIP
    >>> m.compute()["dice"]                                 # doctest: +SKIP
    """

    def __init__(self, *, hausdorff: bool = False, spacing: float | Sequence[float] | None = None) -> None:
        keys = SEGMENTATION_METRICS + (("hausdorff95",) if hausdorff else ())
        super().__init__(segmentation_scores, keys=keys, hausdorff=hausdorff, spacing=spacing)


def _metric_class(fn, class_name: str):
    def __init__(self, **kwargs: Any) -> None:
        PerSampleMean.__init__(self, fn, **kwargs)

    doc = f"Accumulating :func:`{fn.__name__}`: ``update(truth, pred)`` per batch, ``compute()`` -> mean."
    return type(class_name, (PerSampleMean,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})


Dice = _metric_class(dice, "Dice")
VolumetricSimilarity = _metric_class(volumetric_similarity, "VolumetricSimilarity")
Sensitivity = _metric_class(sensitivity, "Sensitivity")
Specificity = _metric_class(specificity, "Specificity")
NMI = _metric_class(nmi, "NMI")
CohenKappa = _metric_class(cohen_kappa, "CohenKappa")
Hausdorff95 = _metric_class(hausdorff95, "Hausdorff95")
