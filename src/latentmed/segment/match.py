"""Matching unsupervised proposals to ground-truth structures, Dice per structure.

DiffSeg's proposals carry no names. For evaluation against labelled structures (e.g. left
lung, right lung, heart; DiNO-Diffusion Table 2) each structure takes the union of proposals
that maximises its Dice. That optimum is exact and cheap: Dice ``2a/(b+g)`` with ``a`` the
overlap and ``b`` the size of the union is a linear-fractional objective, so the best union is
a prefix of the proposals sorted by precision ``a_k / b_k`` (the classic ratio argument), and
all ``K`` prefixes are tried. A structure may reuse a proposal another structure took; more
proposals can only help, so report the proposal count beside the Dice.

That best-union score rewards many segments (an image-blind 8x8 grid reaches Dice 0.77 on
chest2d). :func:`match_one_to_one` is the fair score at a fixed number of segments: each
structure gets at most one proposal and each proposal at most one structure, chosen to maximise
the summed Dice (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``); an unmatched
structure scores 0.

The papers' own scores:

- DiffSeg (google/diffseg ``diffseg/utils.py:85-108``, ``benchmarks.ipynb``): a confusion histogram
  between truth classes (here background 0 and every structure) and segment ids, one segment per
  class by the Hungarian algorithm maximising matched pixels, counts summed over the data set, then
  pixel accuracy ``sum TP / all`` and ``mIoU = nanmean TP / (TP + FP + FN)``
  (:class:`HungarianScores`, :func:`hungarian_counts`).
- DiNO-Diffusion (Sec. 4.4, as we read it): every segment is a candidate mask, scored by Dice
  against each structure; per structure the best candidate is kept (non-maximum suppression over
  candidates), and a segment may serve two structures (:func:`best_candidate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from latentmed.errors import LatentmedError
from latentmed.metrics.segmentation import dice


@dataclass
class StructureMatch:
    """The proposals whose union best matches one structure, and its Dice."""

    name: str
    label: int
    proposals: list[int]
    dice: float


def best_union(labels: np.ndarray, structure: np.ndarray) -> tuple[list[int], float]:
    """Proposal ids (values of ``labels``) whose union maximises Dice with boolean ``structure``."""
    labels = np.asarray(labels).ravel()
    structure = np.asarray(structure, dtype=bool).ravel()
    g = int(structure.sum())
    ids, sizes = np.unique(labels, return_counts=True)
    overlap = np.array([np.count_nonzero(structure[labels == k]) for k in ids])
    if g == 0:
        return [], float("nan")
    order = np.lexsort((-overlap, -(overlap / sizes)))  # precision first, then larger overlap
    a = np.cumsum(overlap[order])
    b = np.cumsum(sizes[order])
    dice = 2 * a / (b + g)
    best = int(np.argmax(dice))
    return sorted(int(k) for k in ids[order[: best + 1]]), float(dice[best])


def match_structures(labels, truth, structures: Mapping[int, str]) -> dict[str, StructureMatch]:
    """For each ``{truth label: name}`` pick the best union of proposals; Dice computed on the masks.

    ``labels`` and ``truth`` are ``[H, W]`` integer maps of the same shape. A structure absent from
    ``truth`` gets Dice NaN (excluded from means by ``nanmean``).
    """
    labels = _as_numpy(labels)
    truth = _as_numpy(truth)
    if labels.shape != truth.shape:
        raise LatentmedError(f"prediction of shape {labels.shape} and truth mask of shape {truth.shape} differ; "
                             "the truth masks must have the image size.")
    out = {}
    for value, name in structures.items():
        gt = truth == value
        ids, _ = best_union(labels, gt)
        pred = np.isin(labels, ids)
        out[name] = StructureMatch(name, int(value), ids, _dice(gt, pred))
    return out


def match_one_to_one(labels, truth, structures: Mapping[int, str]) -> dict[str, StructureMatch]:
    """One proposal per structure, one structure per proposal, maximising the summed Dice (Hungarian).

    A structure absent from ``truth`` gets Dice NaN and no proposal; a present structure left
    without a proposal (fewer proposals than structures) gets Dice 0.
    """
    from scipy.optimize import linear_sum_assignment

    labels = _as_numpy(labels)
    truth = _as_numpy(truth)
    if labels.shape != truth.shape:
        raise LatentmedError(f"prediction of shape {labels.shape} and truth mask of shape {truth.shape} differ; "
                             "the truth masks must have the image size.")
    ids = np.unique(labels)
    values = list(structures)
    score = np.zeros((len(values), len(ids)))
    for r, value in enumerate(values):
        gt = truth == value
        if gt.any():
            score[r] = [_dice(gt, labels == k) for k in ids]
    rows, cols = linear_sum_assignment(score, maximize=True)
    chosen = dict(zip(rows.tolist(), cols.tolist()))
    out = {}
    for r, (value, name) in enumerate(structures.items()):
        gt = truth == value
        if not gt.any():
            out[name] = StructureMatch(name, int(value), [], float("nan"))
        elif r in chosen:
            out[name] = StructureMatch(name, int(value), [int(ids[chosen[r]])], float(score[r, chosen[r]]))
        else:
            out[name] = StructureMatch(name, int(value), [], 0.0)
    return out


def best_candidate(labels, truth, structures: Mapping[int, str]) -> dict[str, StructureMatch]:
    """Per structure, the single segment with the highest Dice (DiNO-Diffusion's candidate masks + NMS).

    A structure absent from ``truth`` gets Dice NaN and no segment.
    """
    labels, truth = _check_pair(labels, truth)
    ids = np.unique(labels)
    out = {}
    for value, name in structures.items():
        gt = truth == value
        if not gt.any():
            out[name] = StructureMatch(name, int(value), [], float("nan"))
            continue
        scores = [_dice(gt, labels == k) for k in ids]
        best = int(np.argmax(scores))
        out[name] = StructureMatch(name, int(value), [int(ids[best])], float(scores[best]))
    return out


def hungarian_counts(labels, truth, classes) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per-class ``(TP, FP, FN)`` pixel counts and the number of scored pixels of one image (DiffSeg's protocol).

    ``classes``: the truth values scored (other truth values are ignored, as the reference ignores
    unlabelled pixels). Segments are matched one to one to classes maximising the matched pixels.
    """
    from scipy.optimize import linear_sum_assignment

    labels, truth = _check_pair(labels, truth)
    classes = list(classes)
    ids, pred = np.unique(labels, return_inverse=True)
    pred = pred.reshape(labels.shape)
    hist = np.zeros((len(classes), len(ids)), dtype=np.int64)
    for r, value in enumerate(classes):
        hist[r] = np.bincount(pred[truth == value], minlength=len(ids))
    rows, cols = linear_sum_assignment(hist, maximize=True)
    tp = np.zeros(len(classes), dtype=np.int64)
    fp = np.zeros(len(classes), dtype=np.int64)
    tp[rows] = hist[rows, cols]
    fp[rows] = hist[:, cols].sum(0) - hist[rows, cols]
    fn = hist.sum(1) - tp
    return tp, fp, fn, int(hist.sum())


@dataclass
class HungarianScores:
    """DiffSeg's benchmark scores from counts summed over images: pixel accuracy, per-class IoU, mIoU."""

    classes: list[str]
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    total: int

    @classmethod
    def of(cls, label_maps, truths, classes: Mapping[int, str]) -> "HungarianScores":
        """Sum :func:`hungarian_counts` over paired label maps and truth maps."""
        tp = fp = fn = 0
        total = 0
        for labels, truth in zip(label_maps, truths):
            a, b, c, n = hungarian_counts(labels, truth, list(classes))
            tp, fp, fn, total = tp + a, fp + b, fn + c, total + n
        return cls(list(classes.values()), np.asarray(tp), np.asarray(fp), np.asarray(fn), total)

    @property
    def pixel_accuracy(self) -> float:
        return float(self.tp.sum() / self.total) if self.total else float("nan")

    @property
    def iou(self) -> dict[str, float]:
        denom = (self.tp + self.fp + self.fn).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return dict(zip(self.classes, (self.tp / denom).tolist()))

    @property
    def miou(self) -> float:
        return float(np.nanmean(list(self.iou.values())))

    def to_dict(self) -> dict:
        return {"pixel_accuracy": self.pixel_accuracy, "miou": self.miou, "iou": self.iou}


def _check_pair(labels, truth) -> tuple[np.ndarray, np.ndarray]:
    labels, truth = _as_numpy(labels), _as_numpy(truth)
    if labels.shape != truth.shape:
        raise LatentmedError(f"prediction of shape {labels.shape} and truth mask of shape {truth.shape} differ; "
                             "the truth masks must have the image size.")
    return labels, truth


def _dice(truth: np.ndarray, pred: np.ndarray) -> float:
    if not truth.any():
        return float("nan")  # the structure is absent: no score rather than a free 1 or 0
    return float(dice(truth[None, None], pred[None, None])[0])  # a batch of one, channel axis of size 1


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 2:
        raise LatentmedError(f"expected a 2-D label map [H, W], got shape {x.shape}.")
    return x


def check_truth_labels(truth: np.ndarray, structures: Mapping[int, str], where: str = "truth mask") -> None:
    """Error when ``truth`` holds values that are neither background (0) nor a known structure."""
    allowed = set(structures) | {0}
    found = set(np.unique(truth).tolist())
    extra = found - allowed
    if extra:
        raise LatentmedError(f"{where} has labels {sorted(extra)} not in the expected {sorted(allowed)} "
                             f"({', '.join(f'{k}={v}' for k, v in structures.items())}); pass --structures to name them.")
