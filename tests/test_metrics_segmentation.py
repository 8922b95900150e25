"""Segmentation metrics against scikit-learn, MONAI and hand counts."""

import numpy as np
import pytest
import torch
from sklearn.metrics import cohen_kappa_score, confusion_matrix, normalized_mutual_info_score

from latentmed.errors import LatentmedError
from latentmed.metrics import segmentation as seg


def _blobs(rng, shape, n):
    """Random masks with some structure: thresholded smoothed noise."""
    from scipy.ndimage import gaussian_filter

    out = []
    for _ in range(n):
        field = gaussian_filter(rng.standard_normal(shape), 2.0)
        out.append(field > rng.uniform(-0.05, 0.1))
    return np.stack(out)


@pytest.mark.parametrize("shape", [(24, 20), (10, 12, 14)])
def test_scores_match_sklearn_and_counts(shape):
    rng = np.random.default_rng(0)
    truth = _blobs(rng, shape, 3)
    pred = truth ^ (rng.random(truth.shape) < 0.15)  # correlated prediction
    pred[2] = _blobs(rng, shape, 1)[0]  # and an unrelated one
    scores = seg.segmentation_scores(torch.from_numpy(truth), pred.astype(np.float32))
    for i in range(3):
        t, p = truth[i].ravel(), pred[i].ravel()
        tn, fp, fn, tp = confusion_matrix(t, p, labels=[False, True]).ravel()
        np.testing.assert_allclose(scores["dice"][i], 2 * tp / (2 * tp + fp + fn))
        np.testing.assert_allclose(scores["volumetric_similarity"][i], 1 - abs(fn - fp) / (2 * tp + fp + fn))
        np.testing.assert_allclose(scores["sensitivity"][i], tp / (tp + fn))
        np.testing.assert_allclose(scores["specificity"][i], tn / (tn + fp))
        np.testing.assert_allclose(scores["nmi"][i], normalized_mutual_info_score(t, p), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(scores["cohen_kappa"][i], cohen_kappa_score(t, p), rtol=1e-9, atol=1e-12)
        # a batch of one sample gives the same values
        single = seg.segmentation_scores(truth[i][None], pred[i][None])
        assert single["dice"].shape == (1,)
        np.testing.assert_allclose(single["nmi"][0], scores["nmi"][i])
    counts = seg.confusion_counts(truth, pred)
    assert counts["tp"].dtype == torch.int64 and counts["tp"].shape == (3,)


def test_argument_order_truth_then_pred():
    truth = np.zeros((1, 10, 10), bool)
    truth[0, 2:6, 2:6] = True  # 16 voxels
    pred = np.zeros((1, 10, 10), bool)
    pred[0, 2:8, 2:6] = True  # 24 voxels, covers the truth
    assert seg.sensitivity(truth, pred) == 1.0  # nothing missed
    np.testing.assert_allclose(seg.sensitivity(pred, truth), 16 / 24)  # swapped = precision
    np.testing.assert_allclose(seg.specificity(truth, pred), 76 / 84)
    np.testing.assert_allclose(seg.specificity(pred, truth), 1.0)  # swapped = NPV


def test_dice_matches_monai():
    from monai.metrics import DiceMetric

    rng = np.random.default_rng(1)
    truth = torch.from_numpy(_blobs(rng, (12, 12, 12), 4))
    pred = torch.from_numpy(_blobs(rng, (12, 12, 12), 4))
    monai_dice = DiceMetric(include_background=True, reduction="none")(pred[:, None].float(), truth[:, None].float())
    ours = seg.dice(truth[:, None], pred[:, None])  # channel axis of size 1 is fine
    np.testing.assert_allclose(ours, monai_dice[:, 0].double(), rtol=1e-6)
    acc = seg.Dice()
    acc.update(truth[:2], pred[:2])
    acc.update(truth[2:], pred[2:])
    np.testing.assert_allclose(acc.compute(), monai_dice.mean().double(), rtol=1e-6)
    acc.reset()
    with pytest.raises(LatentmedError, match="no data"):
        acc.compute()


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_hausdorff95_matches_monai():
    from monai.metrics import compute_hausdorff_distance

    rng = np.random.default_rng(2)
    truth = _blobs(rng, (16, 18, 14), 2)
    pred = _blobs(rng, (16, 18, 14), 2)
    ref = compute_hausdorff_distance(torch.from_numpy(pred)[:, None], torch.from_numpy(truth)[:, None],
                                     include_background=True, percentile=95, spacing=[1.0, 2.0, 0.5])
    ours = seg.hausdorff95(truth, pred, spacing=[1.0, 2.0, 0.5])
    np.testing.assert_allclose(ours, ref[:, 0].double(), rtol=1e-5)
    assert (seg.hausdorff95(truth, truth) == 0).all()


def test_empty_masks_documented_values():
    empty = np.zeros((1, 8, 8), bool)
    full = np.ones((1, 8, 8), bool)
    s = seg.segmentation_scores(empty, empty, hausdorff=True)
    assert all(s[k] == 1 for k in ("dice", "volumetric_similarity", "sensitivity", "specificity",
                                   "nmi", "cohen_kappa"))
    assert s["hausdorff95"] == 0
    some = empty.copy()
    some[0, 2:4, 2:4] = True
    s = seg.segmentation_scores(empty, some, hausdorff=True)
    assert s["dice"] == 0 and s["sensitivity"] == 1 and s["specificity"] == 60 / 64
    assert s["nmi"] == 0 and s["hausdorff95"] == float("inf")
    assert seg.cohen_kappa(full, full) == 1 and seg.nmi(full, full) == 1
    # inverted prediction: NMI is label-permutation invariant, kappa is negative (as sklearn's)
    np.testing.assert_allclose(seg.nmi(some, ~some), 1.0)
    np.testing.assert_allclose(seg.cohen_kappa(some, ~some), cohen_kappa_score(some.ravel(), ~some.ravel()))
    assert seg.cohen_kappa(some, ~some) < 0


def test_bad_input():
    m2 = np.zeros((2, 8, 8))
    with pytest.raises(LatentmedError, match="binary"):
        seg.dice(m2, m2 + 0.5)
    with pytest.raises(LatentmedError, match="shape"):
        seg.dice(np.zeros((4, 8, 8)), np.zeros((8, 8)))
    with pytest.raises(LatentmedError, match=r"expected a batch \[B, H, W\].*mask\[None\]"):
        seg.dice(np.zeros((8, 8)), np.zeros((8, 8)))  # one 2D mask without its batch axis
    with pytest.raises(LatentmedError, match="expected a batch"):
        seg.segmentation_scores(np.zeros((2, 3, 8, 8, 8)), np.zeros((2, 3, 8, 8, 8)))  # 3 channels
    with pytest.raises(LatentmedError, match="spacing"):
        seg.hausdorff95(m2, m2, spacing=[1, 2, 3])


def test_segmentation_scores_class_accumulates():
    rng = np.random.default_rng(3)
    truth, pred = _blobs(rng, (10, 10), 4), _blobs(rng, (10, 10), 4)
    acc = seg.SegmentationScores()
    acc.update(truth[:1], pred[:1])
    acc.update(truth[1:], pred[1:])
    full = seg.segmentation_scores(truth, pred)
    out = acc.compute()
    assert set(out) == set(seg.SEGMENTATION_METRICS)
    for key in out:
        np.testing.assert_allclose(out[key], full[key].mean())
    assert acc.values()["dice"].shape == (4,)
