"""Generative metrics: precision/recall on hand-made point clouds and against a brute-force loop, memorisation, PCA."""

import numpy as np
import pytest
import torch

from latentmed.errors import LatentmedError
from latentmed.metrics import generation as gm


def _brute_force_pr(real, fake, k):
    """Kynkaenniemi et al. 2019 eqs. 1-2 written as plain loops."""
    def radius(points, i):
        d = sorted(np.linalg.norm(points[i] - points[j]) for j in range(len(points)) if j != i)
        return d[k - 1]

    def inside(x, points):
        return any(np.linalg.norm(x - p) <= radius(points, j) for j, p in enumerate(points))

    return (np.mean([inside(f, real) for f in fake]), np.mean([inside(r, fake) for r in real]))


def test_hand_made_clouds():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 5))
    # identical clouds: every point lies in its own ball
    assert gm.precision_recall(real, real.copy()) == {"precision": 1.0, "recall": 1.0}
    # disjoint clouds far apart: nothing is covered either way
    assert gm.precision_recall(real, real + 100.0) == {"precision": 0.0, "recall": 0.0}
    # samples from one small sub-cluster of the data: realistic but not diverse
    sub = real[np.linalg.norm(real - real[0], axis=1).argsort()[:20]]
    fake = sub[rng.integers(0, 20, 200)] + rng.normal(scale=0.01, size=(200, 5))
    pr = gm.precision_recall(real, fake)
    assert pr["precision"] > 0.95 and pr["recall"] < 0.2
    # diverse but partly wrong: half the samples are far away -> precision about 0.5, recall high
    fake2 = np.concatenate([rng.normal(size=(100, 5)), rng.normal(size=(100, 5)) + 50])
    pr2 = gm.precision_recall(real, fake2)
    assert 0.4 < pr2["precision"] <= 0.5 and pr2["recall"] > 0.8


def test_one_dimensional_known_answer():
    real = np.arange(10.0)[:, None]           # k=1 radii: all 1
    fake = np.array([[0.5], [20.0]])          # 0.5 is inside, 20 is not; each fake ball has radius 19.5
    assert gm.knn_radii(real, k=1).tolist() == [1.0] * 10
    assert gm.knn_radii(real, k=3).tolist() == [3, 2, 2, 2, 2, 2, 2, 2, 2, 3]
    assert gm.precision_recall(real, fake, k=1) == {"precision": 0.5, "recall": 1.0}


@pytest.mark.parametrize("k", [1, 3, 5])
def test_matches_brute_force(k):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(40, 3))
    fake = rng.normal(loc=1.0, scale=0.6, size=(30, 3))
    pr = gm.precision_recall(real, fake, k=k, batch_size=7)  # chunking must not change the result
    p, r = _brute_force_pr(real, fake, k)
    assert pr["precision"] == pytest.approx(p) and pr["recall"] == pytest.approx(r)
    assert 0 < pr["precision"] < 1 and 0 < pr["recall"] < 1


def test_fid_and_memorisation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    assert gm.frechet_feature_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # N(0, I) vs N(m, I): FID = |m|^2 (up to sampling noise)
    assert gm.frechet_feature_distance(a, rng.normal(size=(500, 4)) + 2.0) == pytest.approx(16.0, rel=0.1)
    train = rng.normal(size=(300, 4))
    heldout = rng.normal(size=(100, 4))
    fresh = gm.memorisation(rng.normal(size=(100, 4)), heldout, train)
    assert 0.8 < fresh["nn_ratio"] < 1.25 and fresh["copy_fraction"] < 0.2
    assert fresh["far_fraction"] < 0.2
    copies = gm.memorisation(train[:100] + 1e-3, heldout, train)
    assert copies["nn_ratio"] < 0.05 and copies["copy_fraction"] == 1.0 and copies["far_fraction"] == 0.0
    broken = gm.memorisation(rng.normal(size=(100, 4)) * 5, heldout, train)
    assert broken["far_fraction"] > 0.5
    d = gm.nearest_neighbour_distances([[0.0, 0.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 0.0]])
    assert d.tolist() == pytest.approx([0.0, 18 ** 0.5])


def test_pixel_pca_and_errors():
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(3, 64, generator=g)
    x = (torch.randn(50, 3, generator=g) @ basis).reshape(50, 1, 8, 8)   # rank-3 images
    pca = gm.PixelPCA(n_components=3).fit(x)
    f = pca(x)
    assert f.shape == (50, 3) and pca.explained_variance_ratio == pytest.approx(1.0)
    # distances are kept: the images lie in the PCA subspace
    torch.testing.assert_close(torch.cdist(f, f), torch.cdist(x.flatten(1).double(), x.flatten(1).double()),
                               atol=1e-5, rtol=1e-6)
    with pytest.raises(LatentmedError, match="not fitted"):
        gm.PixelPCA()(x)
    with pytest.raises(LatentmedError, match="fitted on"):
        pca(torch.zeros(2, 1, 4, 4))
    with pytest.raises(LatentmedError, match="same feature extractor"):
        gm.precision_recall(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(LatentmedError, match="k=3"):
        gm.precision_recall(np.zeros((3, 2)), np.zeros((5, 2)))
