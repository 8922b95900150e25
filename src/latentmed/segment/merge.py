"""Iterative attention merging and non-maximum suppression (DiffSeg, Tian et al. 2024, Sec. 3.3-3.4).

An ``[N, H, W]`` stack of attention maps (one distribution over key positions per query pixel,
``N = H*W``) is merged into object proposals: iteration 1 averages, for each anchor of an
``M x M`` grid, all maps within symmetric-KL distance ``tau_1`` of the anchor's map; later
iterations merge the proposals. The symmetric KL is the reference code's ``(KL(p||q) + KL(q||p)) / 2``
(google/diffseg ``diffseg/segmentor.py:82-86``). The label map is the argmax of the proposals
bilinearly upsampled to the image size (``segmentor.py:139-143``).

Two rules for the later iterations (``mode``):

- ``"reference"`` (default), ``segmentor.py:103-117``: proposals are visited in order; an unvisited
  proposal averages EVERY proposal within ``tau_i`` of it, already-merged ones included (groups may
  overlap), and marks them visited. This is what the paper's numbers were computed with.
- ``"greedy"``: each unvisited proposal absorbs only the not-yet-merged proposals within ``tau_i``
  (a partition of the proposals; latentmed's earlier rule).

``kl_fp16=True`` computes iteration 1's KL in half precision as the reference does
(``segmentor.py:98``, ``tf.cast(..., tf.float16)``): logs, differences and products rounded to
float16, sums accumulated in float32 and rounded to float16 (our reading of TF's reductions of
half values, which accumulate in float; not checked against TensorFlow here);
later iterations stay in float64 as there. ``refine=True`` is the reference's optional KMeans
(``segmentor.py:128-137``; its benchmark runs with it off).

``num_segments=K`` (not in the paper; for scoring at a fixed K) then merges the two closest
proposals (symmetric KL; anchor-count-weighted mean) until at most K remain.
:func:`calibrated_threshold` turns a quantile of the anchors' pairwise KL into a threshold, so
that one setting means the same at any bin count (see :mod:`latentmed.segment.diffseg`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from latentmed.errors import LatentmedError

_EPS = 1e-12
MERGE_MODES = ("reference", "greedy")


def symmetric_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Pairwise ``(KL(p_i||q_j) + KL(q_j||p_i)) / 2`` of rows of ``p [I, D]`` and ``q [J, D]`` -> ``[I, J]``.

    Uses ``sum (p - q)(log p - log q) / 2`` expanded into matrix products, so no ``[I, J, D]``
    tensor is built.
    """
    p = p.double().clamp_min(_EPS)
    q = q.double().clamp_min(_EPS)
    lp, lq = p.log(), q.log()
    self_p = (p * lp).sum(1, keepdim=True)
    self_q = (q * lq).sum(1, keepdim=True).T
    return (0.5 * (self_p + self_q - p @ lq.T - lp @ q.T)).clamp_min(0.0)


def anchor_grid(size: tuple[int, int], points: int) -> np.ndarray:
    """``points x points`` anchor coordinates ``[(row, col)]`` evenly spaced and centred in ``size``.

    Generalises the reference's ``generate_sampling_grid`` (which assumes 64x64); the grid is
    clipped to the map size when ``points`` exceeds it.
    """
    if points < 1:
        raise LatentmedError(f"grid={points}: expected at least 1 anchor per side (DiffSeg uses 16).")
    axes = []
    for length in size:
        n = min(points, length)
        if n == 1:
            axes.append(np.array([(length - 1) // 2]))
            continue
        step = (length - 1) // (n - 1)
        total = step * (n - 1)
        start = (length - 1 - total) // 2
        axes.append(start + step * np.arange(n))
    rows, cols = np.meshgrid(axes[0], axes[1], indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=1)


def _thresholds(threshold: float | Sequence[float], iterations: int) -> list[float]:
    taus = [float(threshold)] * iterations if np.isscalar(threshold) else [float(t) for t in threshold]
    if not taus or any(not t > 0 for t in taus):
        raise LatentmedError(f"threshold={threshold!r}, iterations={iterations}: expected positive KL thresholds "
                             "and at least one iteration (DiffSeg: 3 iterations; ~0.05 on chest X-rays).")
    return taus


def calibrated_threshold(attention: torch.Tensor, quantile: float, grid: int = 16) -> float:
    """The ``quantile`` of the pairwise symmetric KL between the anchor maps of ``attention [H*W, H, W]``.

    KL between attention maps scales with the number of bins and the maps' sharpness, so a fixed
    threshold (the reference's 1.1 at 4096 bins, the paper's 0.05 on chest X-rays) does not carry
    over to other latent sizes; a quantile of the image's own anchor distances does.
    """
    if not 0 < quantile < 1:
        raise LatentmedError(f"threshold_quantile={quantile}: expected a number in (0, 1), e.g. 0.1.")
    n, H, W = attention.shape
    flat = attention.reshape(n, H * W).double()
    anchors = anchor_grid((H, W), grid)
    a = flat[torch.as_tensor(anchors[:, 0] * W + anchors[:, 1])]
    d = symmetric_kl(a, a)
    off = d[~torch.eye(len(a), dtype=torch.bool)]
    return max(float(torch.quantile(off, quantile)), 1e-12) if off.numel() else 1e-12


def _agglomerate(proposals: torch.Tensor, weights: torch.Tensor, k: int) -> torch.Tensor:
    """Merge the closest pair (symmetric KL) into their weighted mean until ``k`` proposals remain."""
    props, w = proposals.clone(), weights.clone().double()
    while len(props) > k:
        d = symmetric_kl(props, props)
        d.fill_diagonal_(float("inf"))
        i, j = divmod(int(torch.argmin(d)), len(props))
        i, j = min(i, j), max(i, j)
        props[i] = (w[i] * props[i] + w[j] * props[j]) / (w[i] + w[j])
        w[i] = w[i] + w[j]
        keep = torch.arange(len(props)) != j
        props, w = props[keep], w[keep]
    return props


def symmetric_kl_fp16(p: torch.Tensor, q: torch.Tensor, max_elements: int = 2**26) -> torch.Tensor:
    """``symmetric_kl`` in the reference's half precision (``segmentor.py:82-86, 98``) -> ``[I, J]`` float16.

    ``quotient = log p - log q``, ``p * quotient`` and ``q * quotient`` are float16 tensors; each
    sum over the ``D`` bins is accumulated in float32 and rounded to float16, then halved and
    added in float16. No epsilon: a zero bin gives NaN (never below a threshold), as there.
    Rows of ``p`` are processed in chunks of at most ``max_elements`` products.
    """
    p16, q16 = p.to(torch.float16), q.to(torch.float16)
    lp, lq = p16.log(), q16.log()
    rows = max(1, max_elements // max(1, q.shape[0] * q.shape[1]))
    out = []
    for start in range(0, p16.shape[0], rows):
        a, la = p16[start:start + rows, None], lp[start:start + rows, None]  # [c, 1, D]
        quotient = la - lq[None]  # [c, J, D] float16
        kl_1 = (a * quotient).sum(-1, dtype=torch.float32).to(torch.float16) / 2
        kl_2 = -((q16[None] * quotient).sum(-1, dtype=torch.float32).to(torch.float16)) / 2
        out.append(kl_1 + kl_2)
    return torch.cat(out)


def _first_iteration(flat: torch.Tensor, idx: torch.Tensor, tau: float, kl_fp16: bool) -> torch.Tensor:
    """Each anchor averages all maps within ``tau`` of its own map (``segmentor.py:89-101``) -> ``[A, D]``."""
    d = symmetric_kl_fp16(flat[idx], flat) if kl_fp16 else symmetric_kl(flat[idx], flat)
    close = (d < tau).double()  # [A, N]; the anchor itself is at 0
    return (close @ flat) / close.sum(1, keepdim=True)


def _later_iteration(proposals: torch.Tensor, weights: torch.Tensor, tau: float, mode: str
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """One later merge iteration (``mode`` ``reference``: ``segmentor.py:103-117``; ``greedy``: a partition)."""
    close = (symmetric_kl(proposals, proposals) < tau).numpy()
    visited = np.zeros(len(proposals), dtype=bool)
    groups, counts = [], []
    for i in range(len(proposals)):
        if visited[i]:
            continue
        group = close[i].copy() if mode == "reference" else close[i] & ~visited
        group[i] = True
        visited |= group
        groups.append(proposals[torch.as_tensor(group)].mean(0))
        counts.append(weights[torch.as_tensor(group)].sum())
    return torch.stack(groups), torch.stack(counts)


def merge_attention(attention: torch.Tensor, threshold: float | Sequence[float] = 0.05, *, iterations: int = 3,
                    grid: int = 16, refine: bool = False, random_state: int = 0,
                    num_segments: int | None = None, mode: str = "reference", kl_fp16: bool = False
                    ) -> torch.Tensor:
    """Merge ``attention [N=H*W, H, W]`` into proposals ``[K, H, W]`` (Sec. 3.3).

    ``threshold`` is one symmetric-KL threshold for every iteration or one per iteration (the
    reference takes the iteration count from the threshold list, ``segmentor.py:121``).
    ``mode`` and ``kl_fp16``: see the module docstring. ``refine=True`` runs scikit-learn KMeans
    on the ``N`` maps initialised from the proposals and returns the cluster means.
    ``num_segments=K`` then merges the closest proposals until at most K remain. (The keywords are
    :class:`~latentmed.segment.diffseg.DiffSegConfig`'s merge fields, one each.)
    """
    if num_segments is not None and int(num_segments) < 1:
        raise LatentmedError(f"num_segments={num_segments}: expected a positive number of segments (or None).")
    if mode not in MERGE_MODES:
        raise LatentmedError(f"merge mode {mode!r}: expected one of {', '.join(MERGE_MODES)}.")
    if attention.ndim != 3 or attention.shape[0] != attention.shape[1] * attention.shape[2]:
        raise LatentmedError(f"attention of shape {tuple(attention.shape)}: expected [H*W, H, W].")
    taus = _thresholds(threshold, iterations)
    n, H, W = attention.shape
    flat = attention.reshape(n, H * W).double()
    anchors = anchor_grid((H, W), grid)
    proposals = _first_iteration(flat, torch.as_tensor(anchors[:, 0] * W + anchors[:, 1]), taus[0], kl_fp16)
    weights = torch.ones(len(proposals), dtype=torch.float64)  # anchors per proposal
    for tau in taus[1:]:
        proposals, weights = _later_iteration(proposals, weights, tau, mode)
    if refine:
        proposals = _kmeans_refine(flat, proposals, random_state)
        weights = torch.ones(len(proposals), dtype=torch.float64)
    if num_segments is not None and len(proposals) > num_segments:
        proposals = _agglomerate(proposals, weights, int(num_segments))
    return proposals.float().reshape(-1, H, W)


def _kmeans_refine(flat: torch.Tensor, proposals: torch.Tensor, random_state: int) -> torch.Tensor:
    from sklearn.cluster import KMeans

    data = flat.numpy()
    km = KMeans(n_clusters=len(proposals), init=proposals.numpy(), n_init=1, random_state=random_state).fit(data)
    means = [data[km.labels_ == k].mean(0) for k in np.unique(km.labels_)]
    return torch.as_tensor(np.stack(means))


def proposals_to_labels(proposals: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Non-maximum suppression: bilinear upsampling of ``[K, h, w]`` to ``size`` and argmax -> ``[H, W]`` int64."""
    up = proposals[None].float()
    if tuple(up.shape[-2:]) != tuple(size):
        up = F.interpolate(up, size=tuple(size), mode="bilinear", align_corners=False)
    return up[0].argmax(0)


@dataclass
class MergeResult:
    """Proposals ``[K, h, w]`` at attention resolution and the label map ``[H, W]`` (values ``0..K-1``)."""

    proposals: torch.Tensor
    labels: torch.Tensor


def segment_attention(attention: torch.Tensor, size: tuple[int, int], threshold: float | Sequence[float] = 0.05,
                      **merge) -> MergeResult:
    """Merge ``attention [H*W, h, w]`` (``merge``: :func:`merge_attention`'s keywords) -> proposals + label map."""
    proposals = merge_attention(attention, threshold, **merge)
    return MergeResult(proposals, proposals_to_labels(proposals, size))
