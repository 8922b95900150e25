"""Subsets, the augmentation protocol, the memorisation check and the CLI of the ldm group."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from latentmed.errors import LatentmedError
from latentmed.ldm.augment import macro_auc, memorisation_check, paired_test
from latentmed.ldm.synthesis import balanced_order, interpolation_pairs, nested_subsets


def test_balanced_nested_subsets():
    rng = np.random.default_rng(0)
    y = (rng.random((300, 2)) < [0.1, 0.5]).astype(int)  # rare first label
    subs = nested_subsets(y, [20, 60, 200], seed=1)
    assert set(subs[20]) <= set(subs[60]) <= set(subs[200])
    combos = lambda idx: {k: int(((y[idx] == k).all(1)).sum()) for k in [(0, 0), (0, 1), (1, 0), (1, 1)]}  # noqa
    c20 = combos(subs[20])
    assert c20[(1, 0)] == c20[(0, 0)] == 5  # 4 combinations x 5: balanced although (1, 0) is rare
    assert sorted(balanced_order(y, 3)) == list(range(300))
    with pytest.raises(LatentmedError, match="larger than the 300 images"):
        nested_subsets(y, [301])
    pairs = interpolation_pairs(y, 50, seed=0)
    for a, b, r in pairs:
        assert a != b and 0 <= r <= 1
        assert (y[a] & y[b]).any() or (not y[a].any() and not y[b].any())


def test_memorisation_check_flags_copies():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(40, 1, 16, 16, generator=g) * 2 - 1
    held = torch.rand(20, 1, 16, 16, generator=g) * 2 - 1
    copies = train[:10] + 0.01 * torch.randn(10, 1, 16, 16, generator=g)
    fresh = torch.rand(10, 1, 16, 16, generator=g) * 2 - 1
    m_copy, m_fresh = memorisation_check(copies, train, held), memorisation_check(fresh, train, held)
    assert m_copy["fraction_synthetic_below_p5"] == 1.0 and m_copy["synthetic_nearest"] == list(range(10))
    assert m_fresh["fraction_synthetic_below_p5"] < 0.3
    assert m_copy["median_synthetic_to_train"] < 0.2 * m_copy["median_heldout_to_train"]


def test_auc_and_paired_test():
    y = np.array([[0, 1], [1, 0], [1, 1], [0, 0]])
    assert macro_auc(y, y.astype(float)) == 1.0
    assert macro_auc(y, 1 - y.astype(float)) == 0.0
    assert paired_test([0.8, 0.82, 0.81], [0.7, 0.71, 0.705]) < 0.01
    assert np.isnan(paired_test([0.8, 0.8], [0.7, 0.7]))
