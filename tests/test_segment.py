"""DiffSeg: attention capture, aggregation, merging, matching (tiny UNets and synthetic maps)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from latentmed.errors import LatentmedError
from latentmed.segment.aggregate import aggregate_attention, map_shapes
from latentmed.segment.capture import capture_self_attention
from latentmed.segment.match import best_union, match_structures
from latentmed.segment.merge import anchor_grid, merge_attention, proposals_to_labels, symmetric_kl


def tiny_unet(heads: int = 2, attention: bool = True, seed: int = 0):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    down = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D") if attention else ("DownBlock2D", "DownBlock2D")
    up = ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D") if attention else ("UpBlock2D", "UpBlock2D")
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=down, up_block_types=up, mid_block_type="UNetMidBlock2DCrossAttn" if attention else None,
        cross_attention_dim=6, attention_head_dim=heads, norm_num_groups=4).eval()


# ---------------------------------------------------------------- capture
def test_capture_keeps_output_and_restores_processors():
    unet = tiny_unet()
    before = dict(unet.attn_processors)
    x, c = torch.randn(2, 4, 8, 8), torch.randn(2, 3, 6)
    with torch.no_grad():
        ref = unet(x, 300, encoder_hidden_states=c).sample
        with capture_self_attention(unet) as store:
            out = unet(x, 300, encoder_hidden_states=c).sample
    assert torch.equal(ref, out)
    assert all(unet.attn_processors[k] is v for k, v in before.items())
    maps = store.maps()
    assert set(maps) == {64, 16}  # 8x8 and 4x4 latents; cross-attention (attn2) not recorded
    assert all(n.endswith("attn1") for n in store.block_names)
    for n, m in maps.items():
        assert m.shape == (2, n, n)
        torch.testing.assert_close(m.sum(-1), torch.ones(2, n))


def test_capture_restores_after_error_and_records_true_probabilities():
    unet = tiny_unet(heads=1)  # one head: the recorded map is exactly the block's attention
    before = dict(unet.attn_processors)
    with pytest.raises(RuntimeError), capture_self_attention(unet):
        unet(torch.randn(1, 3, 8, 8), 1, encoder_hidden_states=torch.randn(1, 3, 6))
    assert all(unet.attn_processors[k] is v for k, v in before.items())

    name = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"
    attn = unet.get_submodule(name)
    seen = {}
    hook = attn.register_forward_hook(lambda m, args, kwargs, out: seen.update(x=args[0], y=out), with_kwargs=True)
    with torch.no_grad(), capture_self_attention(unet, keep_blocks=True) as store:
        unet(torch.randn(1, 4, 8, 8), 5, encoder_hidden_states=torch.randn(1, 3, 6))
    hook.remove()
    probs = store.blocks[name]
    # oracle: the block's output is to_out(P @ V)
    expected = attn.to_out[0](probs @ attn.to_v(seen["x"]))
    torch.testing.assert_close(expected, seen["y"], atol=1e-5, rtol=1e-4)


def test_unet_without_self_attention_is_a_clear_error():
    with pytest.raises(LatentmedError, match="no self-attention"):
        with capture_self_attention(tiny_unet(attention=False)):
            pass


# ---------------------------------------------------------------- aggregation
def test_aggregation_weights_and_upsampling():
    gen = torch.Generator().manual_seed(0)
    hi = torch.rand(1, 64, 64, generator=gen).softmax(-1)  # 8x8 maps
    lo = torch.full((1, 16, 16), 1 / 16)  # uniform 4x4 maps stay uniform after upsampling
    out = aggregate_attention({64: hi, 16: lo}, (8, 8))
    assert out.shape == (1, 64, 8, 8)
    w_hi, w_lo = 8 / 12, 4 / 12  # proportional to side length
    torch.testing.assert_close(out[0].reshape(64, 64), w_hi * hi[0] + w_lo / 64)
    torch.testing.assert_close(aggregate_attention({64: hi, 16: lo}, (8, 8), weighting={8: 1.0})[0].reshape(64, 64), hi[0])

    # a low-resolution one-hot map: query pixel (i, j) at 8x8 takes row (i//2, j//2) of the 4x4 map
    one_hot = torch.eye(16)[None]
    agg = aggregate_attention({16: one_hot, 64: hi}, (8, 8), weighting={4: 1.0})[0]
    torch.testing.assert_close(agg.sum((1, 2)), torch.ones(64))
    up = F.interpolate(one_hot[0].reshape(16, 1, 4, 4), size=(8, 8), mode="bilinear", align_corners=False)
    up = up / up.sum((2, 3), keepdim=True)
    for i, j in [(0, 0), (3, 5), (7, 7)]:
        torch.testing.assert_close(agg[i * 8 + j], up[(i // 2) * 4 + j // 2, 0])


def test_map_shapes_rejects_foreign_maps():
    assert map_shapes([80, 20, 6], (8, 10)) == {80: (8, 10), 20: (4, 5), 6: (2, 3)}
    with pytest.raises(LatentmedError, match="does not match"):
        map_shapes([50], (8, 8))


# ---------------------------------------------------------------- merging
def partition_attention(partition: np.ndarray, noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """Each pixel attends uniformly to its own region (a small floor elsewhere): [H*W, H, W]."""
    H, W = partition.shape
    flat = partition.ravel()
    maps = (flat[:, None] == flat[None, :]).astype(np.float64) + 1e-3
    if noise:
        maps *= np.exp(noise * np.random.default_rng(seed).standard_normal(maps.shape))
    maps /= maps.sum(1, keepdims=True)
    return torch.as_tensor(maps, dtype=torch.float32).reshape(H * W, H, W)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist()))
    return len(pairs) == len(set(a.ravel().tolist())) == len(set(b.ravel().tolist()))


@pytest.mark.parametrize("refine", [False, True])
def test_merging_recovers_a_known_partition(refine):
    H = W = 16
    part = np.zeros((H, W), dtype=int)
    part[:, 8:] = 1
    part[4:12, 2:7] = 2
    part[10:, 10:] = 3
    attn = partition_attention(part, noise=0.05)
    proposals = merge_attention(attn, 0.5, iterations=3, grid=8, refine=refine)
    assert proposals.shape[0] == 4
    labels = proposals_to_labels(proposals, (H, W)).numpy()
    assert same_partition(labels, part)
    big = proposals_to_labels(proposals, (32, 32)).numpy()  # argmax after bilinear upsampling
    to_big = dict(zip(part.ravel().tolist(), labels.ravel().tolist()))
    expected = np.vectorize(to_big.get)(np.repeat(np.repeat(part, 2, 0), 2, 1))
    assert big.shape == (32, 32) and (big == expected).mean() > 0.95


def test_threshold_controls_granularity():
    part = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 8, 0), 8, 1)
    attn = partition_attention(part)
    assert merge_attention(attn, 0.5, grid=4).shape[0] == 4
    assert merge_attention(attn, 100.0, grid=4).shape[0] == 1  # everything within the threshold
    with pytest.raises(LatentmedError, match="threshold"):
        merge_attention(attn, 0.0)


def test_symmetric_kl_and_anchor_grid_match_references():
    from scipy.special import rel_entr

    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(7), 3), rng.dirichlet(np.ones(7), 4)
    ref = np.array([[(rel_entr(a, b).sum() + rel_entr(b, a).sum()) / 2 for b in q] for a in p])
    np.testing.assert_allclose(symmetric_kl(torch.as_tensor(p), torch.as_tensor(q)).numpy(), ref, atol=1e-10)
    grid = anchor_grid((64, 64), 16)  # the reference generate_sampling_grid(16) on 64x64
    assert len(grid) == 256 and sorted(set(grid[:, 0])) == list(range(1, 62, 4))
    assert len(anchor_grid((8, 8), 16)) == 64  # clipped to the map size


# ---------------------------------------------------------------- matching
def test_best_union_is_the_exhaustive_optimum():
    rng = np.random.default_rng(1)
    for _ in range(20):
        labels = rng.integers(0, 6, (12, 12))
        truth = rng.random((12, 12)) < 0.4
        ids, dice = best_union(labels, truth)
        brute = max(
            (2 * np.sum(truth & np.isin(labels, s)) / (truth.sum() + np.isin(labels, s).sum()), s)
            for r in range(1, 7) for s in itertools.combinations(range(6), r))
        assert dice == pytest.approx(brute[0])


def test_match_structures_and_bad_truth():
    labels = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 1, 1], [2, 2, 1, 1]])
    res = match_structures(labels, truth, {1: "left", 2: "right", 3: "heart"})
    assert res["left"].proposals == [1, 3] and res["left"].dice == pytest.approx(1.0)
    assert res["right"].dice == pytest.approx(1.0)
    assert np.isnan(res["heart"].dice)
    with pytest.raises(LatentmedError, match="truth mask"):
        match_structures(labels, truth[:2], {1: "left"})


# ---------------------------------------------------------------- fixed-K scoring (issue 16)
def test_one_to_one_matching_on_a_hand_made_example():
    from latentmed.segment.match import match_one_to_one

    # truth: left lung (1) cols 0-1, right lung (2) cols 4-5, heart (3) rows 4-5 cols 2-3; 6x6
    truth = np.zeros((6, 6), int)
    truth[:, :2], truth[:, 4:], truth[4:, 2:4] = 1, 2, 3
    # prediction: proposal 7 = both lungs merged (the intensity failure), 5 = heart, 0 = rest
    labels = np.zeros((6, 6), int)
    labels[:, :2], labels[:, 4:], labels[4:, 2:4] = 7, 7, 5
    res = match_one_to_one(labels, truth, {1: "left", 2: "right", 3: "heart"})
    # 7 vs left: 2*12/(24+12) = 2/3; 7 vs right alike; 0 vs right: 0; only one lung can take proposal 7
    dices = sorted([res["left"].dice, res["right"].dice])
    assert dices == pytest.approx([0.0, 2 / 3])
    assert res["heart"].proposals == [5] and res["heart"].dice == pytest.approx(1.0)
    used = [p for m in res.values() for p in m.proposals]
    assert len(used) == len(set(used))  # one-to-one
    # best-union matching gives both lungs the merged proposal and scores them 2/3 each
    union = match_structures(labels, truth, {1: "left", 2: "right", 3: "heart"})
    assert union["left"].dice == pytest.approx(2 / 3) and union["right"].dice == pytest.approx(2 / 3)
    # fewer proposals than structures: the unmatched structure scores 0; an absent one NaN
    one = np.zeros((6, 6), int)
    res = match_one_to_one(one, truth, {1: "left", 2: "right", 3: "heart", 4: "absent"})
    assert sum(m.dice == 0.0 for k, m in res.items() if k != "absent") == 2 and np.isnan(res["absent"].dice)


def test_one_to_one_is_the_exhaustive_optimum():
    from latentmed.segment.match import match_one_to_one

    rng = np.random.default_rng(3)
    for _ in range(10):
        labels, truth = rng.integers(0, 4, (10, 10)), rng.integers(0, 4, (10, 10))
        res = match_one_to_one(labels, truth, {1: "a", 2: "b", 3: "c"})
        d = np.array([[2 * np.sum((truth == s) & (labels == p)) / (np.sum(truth == s) + np.sum(labels == p))
                       for p in range(4)] for s in (1, 2, 3)])
        brute = max(sum(d[i, perm[i]] for i in range(3)) for perm in itertools.permutations(range(4), 3))
        assert sum(m.dice for m in res.values()) == pytest.approx(brute)


def test_num_segments_merges_to_exactly_k():
    part = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 8, 0), 8, 1)
    part[:8, :8] = np.where(np.arange(8)[None, :] < 4, 0, 4)  # 5 regions, two of them small
    attn = partition_attention(part, noise=0.02)
    assert merge_attention(attn, 0.5, grid=8).shape[0] == 5
    assert merge_attention(attn, 0.5, grid=8, num_segments=3).shape[0] == 3
    assert merge_attention(attn, 0.5, grid=8, num_segments=9).shape[0] == 5  # never splits
    with pytest.raises(LatentmedError, match="num_segments"):
        merge_attention(attn, 0.5, grid=8, num_segments=0)


def test_calibrated_threshold_is_a_quantile_of_anchor_distances():
    from latentmed.segment.merge import calibrated_threshold

    part = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 8, 0), 8, 1)
    attn = partition_attention(part, noise=0.05)
    lo, hi = calibrated_threshold(attn, 0.1, grid=4), calibrated_threshold(attn, 0.9, grid=4)
    assert 0 < lo < hi
    # 16 anchors, 4 per region: 12 of 16*15 = 240 ordered pairs share a region -> the 0.03-quantile is small
    within = calibrated_threshold(attn, 0.03, grid=4)
    assert merge_attention(attn, within * 1.5, grid=4, iterations=1).shape[0] >= 4
    with pytest.raises(LatentmedError, match="threshold_quantile"):
        calibrated_threshold(attn, 1.5)


def test_grid_and_kmeans_xy_baselines():
    from latentmed.segment.baselines import grid_baseline, grid_shape, kmeans_baseline

    assert grid_shape(4) == (2, 2) and grid_shape(6) == (2, 3) and grid_shape(5) == (1, 5)
    g = grid_baseline((8, 8), 4).numpy()
    assert set(np.unique(g)) == {0, 1, 2, 3} and g[0, 0] == 0 and g[7, 7] == 3 and (np.bincount(g.ravel()) == 16).all()
    # two equally dark squares left and right: intensity cannot separate them, intensity + x,y can
    img = torch.full((1, 1, 16, 16), 1.0)
    img[..., 4:12, 1:6] = -1.0
    img[..., 4:12, 10:15] = -1.0
    inten = kmeans_baseline(img, 4)[0].numpy()
    xy = kmeans_baseline(img, 4, features="intensity_xy", xy_weight=1.0)[0].numpy()
    assert inten[8, 3] == inten[8, 12]
    assert xy[8, 3] != xy[8, 12]
    with pytest.raises(LatentmedError, match="features"):
        kmeans_baseline(img, 3, features="rgb")


# ---------------------------------------------------------------- the papers' scores
def test_papers_scores_on_a_hand_made_example():
    """DiffSeg: Hungarian matching of segments to classes, pixel accuracy and mIoU from summed counts;
    DiNO-Diffusion: the best single candidate per structure (one segment may serve two structures)."""
    from latentmed.segment.match import HungarianScores, best_candidate, hungarian_counts, match_one_to_one

    truth = np.array([[0, 0, 1, 1],
                      [0, 0, 1, 1],
                      [2, 2, 2, 2],
                      [2, 2, 2, 2]])
    pred = np.array([[5, 5, 5, 5],     # segment 5 covers background and structure 1
                     [5, 5, 5, 5],
                     [7, 7, 7, 9],
                     [7, 7, 7, 9]])
    tp, fp, fn, total = hungarian_counts(pred, truth, [0, 1, 2])
    # matching: 5 -> background (4 px; 1 would also get 4: the tie goes to the first row), 7 -> class 2 (6 px);
    # class 1 gets segment 9 (0 px)
    assert total == 16 and tp.tolist() == [4, 0, 6]
    assert fp.tolist() == [4, 2, 0] and fn.tolist() == [0, 4, 2]
    scores = HungarianScores.of([pred, pred], [truth, truth], {0: "bg", 1: "a", 2: "b"})
    assert scores.pixel_accuracy == pytest.approx(10 / 16)
    assert scores.iou == pytest.approx({"bg": 4 / 8, "a": 0.0, "b": 6 / 8})
    assert scores.miou == pytest.approx((0.5 + 0 + 0.75) / 3)
    structures = {1: "a", 2: "b"}
    cand = best_candidate(pred, truth, structures)
    assert cand["a"].proposals == [5] and cand["a"].dice == pytest.approx(2 * 4 / (8 + 4))
    assert cand["b"].proposals == [7] and cand["b"].dice == pytest.approx(2 * 6 / (6 + 8))
    one = match_one_to_one(np.where(pred == 9, 7, pred), truth, structures)  # two segments: 5 and 7
    assert one["a"].dice == pytest.approx(2 / 3) and one["b"].dice == pytest.approx(1.0)
    assert best_candidate(pred, np.zeros_like(truth), structures)["a"].proposals == []
