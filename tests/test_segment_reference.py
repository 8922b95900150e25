"""DiffSeg's `reference` merge against an independent numpy port of google/diffseg `diffseg/segmentor.py`.

The port below was written from the reference file (lines cited) and shares no code with
`latentmed.segment`: grid (`generate_sampling_grid`, :22-30, with 63/64 generalised to the map
side), KL (:82-86), first iteration with the fp16 cast (:89-101), later iterations that average
every proposal within the threshold, already-merged ones included (:103-117), bilinear
upsampling with half-pixel centres (keras `UpSampling2D`, :139-140) and argmax (:142-143).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentmed.segment.merge import merge_attention, proposals_to_labels


# ---------------------------------------------------------------- the independent port
def ref_grid(num_points: int, side: int) -> np.ndarray:
    segment_len = (side - 1) // (num_points - 1)
    total_len = segment_len * (num_points - 1)
    start = (side - 1 - total_len) // 2
    x = np.linspace(start, total_len + start, num_points)
    xx, yy = np.meshgrid(x, x, indexing="ij")
    return np.concatenate([xx.reshape(-1, 1), yy.reshape(-1, 1)], axis=-1).astype(int)


def ref_kl(x: np.ndarray, y: np.ndarray, half: bool = False) -> np.ndarray:
    """segmentor.py:82-86 over the last two axes; ``half``: float16 operands, float32 sums rounded to float16."""
    if half:
        x, y = x.astype(np.float16), y.astype(np.float16)
    quotient = np.log(x) - np.log(y)
    acc = np.float32 if half else np.float64
    kl_1 = (x * quotient).sum(axis=(-2, -1), dtype=acc).astype(x.dtype) / x.dtype.type(2)
    kl_2 = -(y * quotient).sum(axis=(-2, -1), dtype=acc).astype(x.dtype) / x.dtype.type(2)
    return kl_1 + kl_2


def ref_upsample(maps: np.ndarray, out: int) -> np.ndarray:
    """Bilinear resize of ``[K, s, s]`` to ``out`` with half-pixel centres (tf.image.resize)."""
    s = maps.shape[-1]
    src = np.clip((np.arange(out) + 0.5) * s / out - 0.5, 0, s - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, s - 1)
    f = src - lo
    rows = maps[:, lo, :] * (1 - f)[None, :, None] + maps[:, hi, :] * f[None, :, None]
    return rows[:, :, lo] * (1 - f)[None, None, :] + rows[:, :, hi] * f[None, None, :]


def ref_segment(attns: np.ndarray, thresholds, num_points: int, out: int, half: bool = False) -> np.ndarray:
    """attns ``[s, s, s, s]`` (query row, query col, key row, key col) -> label map ``[out, out]``."""
    side = attns.shape[0]
    grid = ref_grid(num_points, side)
    merged = None
    for it, tau in enumerate(thresholds):
        if it == 0:
            anchors = attns[grid[:, 0], grid[:, 1]][:, None]  # A x 1 x s x s
            flat = attns.reshape(1, side * side, side, side)
            kl_bin = (ref_kl(anchors, flat, half) < tau).astype(np.float64)  # A x N
            merged = (kl_bin @ attns.reshape(-1, side * side) / kl_bin.sum(1, keepdims=True)).reshape(-1, side, side)
            continue
        matched, new = set(), []
        for i, point in enumerate(merged):
            if i in matched:
                continue
            matched.add(i)
            close = ref_kl(point, merged) < tau
            if close.sum() > 0:
                matched.update(np.arange(len(merged))[close].tolist())
                new.append(merged[close].mean(0))
        merged = np.array(new)
    return ref_upsample(merged, out).argmax(0)


# ---------------------------------------------------------------- planted-region attention maps
def planted(side: int = 16, local: float = 5.0, noise: float = 0.1, seed: int = 0):
    """Four planted regions; a pixel attends to its region, more to nearby pixels of it (``local``), noise."""
    part = np.zeros((side, side), int)
    part[:, side // 2:] = 1
    part[side // 4: 3 * side // 4, 2: side // 2 - 1] = 2
    part[5 * side // 8:, 5 * side // 8:] = 3
    pos = np.stack(np.mgrid[:side, :side], -1).reshape(-1, 2).astype(float)
    flat = part.ravel()
    same = (flat[:, None] == flat[None, :]).astype(float)
    d2 = ((pos[:, None] - pos[None]) ** 2).sum(-1)
    maps = same + 1e-2 + local * np.exp(-d2 / 8) * same
    maps *= np.exp(noise * np.random.default_rng(seed).standard_normal(maps.shape))
    maps /= maps.sum(1, keepdims=True)
    return part, maps.reshape(side, side, side, side)


def ours(attns: np.ndarray, tau: float, grid: int, out: int, **kw) -> np.ndarray:
    s = attns.shape[0]
    proposals = merge_attention(torch.as_tensor(attns).reshape(s * s, s, s), tau, iterations=3, grid=grid, **kw)
    return proposals_to_labels(proposals, (out, out)).numpy()


@pytest.mark.parametrize("half", [False, True])
def test_reference_mode_agrees_label_for_label_with_an_independent_port(half):
    _, attns = planted()
    differs = []
    for tau in (0.1, 0.3, 1.0) if half else (0.05, 0.1, 0.2, 0.3, 0.5, 1.0):
        expected = ref_segment(attns, [tau] * 3, num_points=8, out=32, half=half)
        got = ours(attns, tau, 8, 32, mode="reference", kl_fp16=half)
        assert np.array_equal(got, expected), f"tau={tau}: {(got == expected).mean():.3f} of pixels agree"
        differs.append(not np.array_equal(ours(attns, tau, 8, 32, mode="greedy", kl_fp16=half), expected))
    assert sum(differs) >= 2  # the greedy (exclusive) grouping is a different rule on these maps


@pytest.mark.parametrize("mode", ["reference", "greedy"])
def test_both_modes_recover_planted_regions(mode):
    """Positive control: each planted region is matched one to one by a segment with Dice >= 0.95."""
    from scipy.optimize import linear_sum_assignment

    part, attns = planted(local=0.0)
    labels = ours(attns, 0.5, 8, 16, mode=mode)
    ids = np.unique(labels)
    dice = np.array([[2 * np.sum((part == r) & (labels == k)) / (np.sum(part == r) + np.sum(labels == k))
                      for k in ids] for r in range(4)])
    rows, cols = linear_sum_assignment(dice, maximize=True)
    assert len(ids) == 4 and dice[rows, cols].min() >= 0.95
    assert np.array_equal(labels, ref_segment(attns, [0.5] * 3, 8, 16))
