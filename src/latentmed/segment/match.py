"""Matching unsupervised proposals to ground-truth structures, Dice per structure.

DiffSeg's proposals carry no names. For evaluation against labelled structures (e.g. left
lung, right lung, heart; DiNO-Diffusion Table 2) each structure takes the union of proposals
that maximises its Dice. That optimum is exact and cheap: Dice ``2a/(b+g)`` with ``a`` the
overlap and ``b`` the size of the union is a linear-fractional objective, so the best union is
a prefix of the proposals sorted by precision ``a_k / b_k`` (the classic ratio argument), and
all ``K`` prefixes are tried. A structure may reuse a proposal another structure took; more
proposals can only help, so report the proposal count beside the Dice.
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


def _dice(truth: np.ndarray, pred: np.ndarray) -> float:
    if not truth.any():
        return float("nan")  # the structure is absent: no score rather than a free 1 or 0
    return float(dice(truth, pred))


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
