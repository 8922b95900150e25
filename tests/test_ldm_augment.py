"""Subsets, the augmentation protocol, the memorisation check and the CLI of the ldm group."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latentmed.errors import LatentmedError
from latentmed.ldm.augment import macro_auc, memorisation_check, paired_test, training_sets
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


def test_seed_protocol_rows_gate_and_generators():
    """Issue 16: real-only vs real + generated rows over subset seeds, classical/shuffled generators, the gate."""
    from latentmed.ldm.augment import (AugmentProtocol, ClassifierSpec, augment_rows, augment_table, classical_generator,
                                       shuffled_token_generator)
    from latentmed.ldm.model import tiny_ldm

    g = torch.Generator().manual_seed(0)
    y = np.array([[i % 2, (i // 2) % 2] for i in range(40)])
    x = torch.randn(40, 1, 16, 16, generator=g) * 0.1
    x[:, :, :, :8] += 2 * torch.as_tensor(y[:, 0], dtype=torch.float32).view(-1, 1, 1, 1)  # label 0: left half
    x[:, :, :8, :] += 2 * torch.as_tensor(y[:, 1], dtype=torch.float32).view(-1, 1, 1, 1)  # label 1: top half
    copies = lambda xs, ys, n, seed: (xs[torch.arange(n) % len(xs)], ys[np.arange(n) % len(ys)])  # noqa: E731
    flipped = lambda xs, ys, n, seed: (xs[torch.arange(n) % len(xs)], 1 - ys[np.arange(n) % len(ys)])  # noqa: E731
    res = augment_rows(x[:30], y[:30], x[30:], y[30:], {"copies": copies, "wrong labels": flipped},
                       AugmentProtocol(subsets=(4, 8), ratios=(2,), folds=0, seeds=2),
                       ClassifierSpec(size=16, epochs=1, min_steps=40))
    assert {(r["subset"], r["setting"]) for r in res.rows} == {
        (n, s) for n in (4, 8) for s in ("real", "real+copies 1:2", "real+wrong labels 1:2")}
    gate = res.gate
    assert gate["copies"] > 0.9 and gate["wrong labels"] < 0.1  # read-back catches mislabelled images
    assert len(res.kept["copies"][0]) == 2 * 8 * 2
    assert "| 8 | real+wrong labels 1:2 |" in augment_table(res)
    # classical augmentation keeps shapes and labels, changes pixels, and is seeded
    xa, ya = classical_generator()(x[:4], y[:4], 8, 0)
    xb, _ = classical_generator()(x[:4], y[:4], 8, 0)
    assert xa.shape == (8, 1, 16, 16) and np.array_equal(ya, y[np.arange(8) % 4]) and torch.equal(xa, xb)
    assert not torch.allclose(xa[:4], x[:4])
    # the shuffled-token null conditions every image on another image's tokens
    ldm = tiny_ldm(image_size=16, seed=0)
    seen = {}
    real_synth = __import__("latentmed.ldm.synthesis", fromlist=["synthesize"]).synthesize

    def spy(ldm_, images, labels, *a, **k):
        seen["images"], seen["labels"] = images, labels
        return real_synth(ldm_, images, labels, *a, **k)

    import latentmed.ldm.synthesis as synthesis
    old, synthesis.synthesize = synthesis.synthesize, spy
    try:
        xs, ys = shuffled_token_generator(ldm, steps=1)(x[:5], y[:5], 5, 3)
    finally:
        synthesis.synthesize = old
    assert xs.shape[0] == 5 and np.array_equal(seen["labels"], y[:5])
    moved = [int(np.flatnonzero([torch.equal(seen["images"][i], x[j]) for j in range(5)])[0]) for i in range(5)]
    assert sorted(moved) == list(range(5)) and all(m != i for i, m in enumerate(moved))


def _halves(n, size=32, seed=0):
    """Images whose label 0 brightens the left half and label 1 the top half (plus noise)."""
    g = torch.Generator().manual_seed(seed)
    y = np.array([[i % 2, (i // 2) % 2] for i in range(n)])
    x = torch.randn(n, 1, size, size, generator=g) * 0.3
    x[:, :, :, : size // 2] += torch.as_tensor(y[:, 0], dtype=torch.float32).view(-1, 1, 1, 1)
    x[:, :, : size // 2, :] += torch.as_tensor(y[:, 1], dtype=torch.float32).view(-1, 1, 1, 1)
    return x, y


def test_plateau_schedule_and_early_stopping_then_densenet121():
    """The LR drops on a plateau of the validation AUC and training stops ``stop_patience`` epochs after the best
    one, returning the best epoch's weights (small CNN: fast); MONAI's DenseNet-121 trains on a tiny set."""
    from latentmed.train.classifier import EarlyStopping, fit_classifier_early_stopping, validation_score

    x, y = _halves(16)
    xv, yv = _halves(8, seed=1)
    stop = EarlyStopping(max_epochs=40, plateau_patience=1, stop_patience=3, factor=0.1)
    net, hist = fit_classifier_early_stopping(x, y, (xv, yv), arch="small", stopping=stop, batch_size=8,
                                              lr=1e-2, seed=0)
    assert hist["monitor"] == "val_auc" and max(hist["score"]) > 0.9  # it learned the halves
    assert hist["epochs"] == hist["best_epoch"] + 1 + stop.stop_patience < stop.max_epochs  # stopped early
    assert hist["lr"][0] == 1e-2 and min(hist["lr"]) < 1e-2  # reduced on a plateau ...
    drop = next(i for i, v in enumerate(hist["lr"]) if v < 1e-2)
    best_before = max(range(drop), key=lambda i: (hist["score"][i], -i))
    assert drop - 1 - best_before >= stop.plateau_patience  # ... only after plateau_patience epochs without gain
    score, _ = validation_score(net, xv, torch.as_tensor(yv).float())
    assert score == pytest.approx(max(hist["score"]))  # the best epoch's weights come back
    with pytest.raises(LatentmedError, match="validation split"):
        fit_classifier_early_stopping(x, y, (xv, yv[:, :1]), stopping=stop)
    dense, h = fit_classifier_early_stopping(x[:8], y[:8], (xv[:4], yv[:4]), arch="densenet121", batch_size=8,
                                             stopping=EarlyStopping(max_epochs=2), seed=0)
    assert type(dense).__name__ == "DenseNet121" and h["epochs"] == 2 and np.isfinite(h["score"]).all()


def test_interpolation_pairs_do_not_repeat_until_all_are_used():
    from collections import Counter

    y = np.array([[1, 0], [1, 1], [0, 1], [0, 0], [0, 0], [1, 0]])
    ext = np.concatenate([y, ~y.any(1, keepdims=True)], 1).astype(bool)
    valid = {(a, b) for a in range(6) for b in range(a + 1, 6) if (ext[a] & ext[b]).any()}
    pairs = interpolation_pairs(y, len(valid), seed=2)
    assert len(pairs) == len(valid)
    assert {tuple(sorted(p[:2])) for p in pairs} == valid  # every valid pair exactly once
    more = Counter(tuple(sorted(p[:2])) for p in interpolation_pairs(y, 2 * len(valid) + 3, seed=2))
    assert set(more) == valid and set(more.values()) <= {2, 3} and sum(more.values()) == 2 * len(valid) + 3
    assert interpolation_pairs(y, 9, seed=4) == interpolation_pairs(y, 9, seed=4)


def test_ratios_give_the_asked_counts_and_folds_are_stratified_partitions():
    from latentmed.ldm.augment import AugmentProtocol, label_strata, split_validation

    m = 10
    xr = torch.arange(m, dtype=torch.float32).view(m, 1, 1, 1).expand(m, 1, 4, 4)
    yr = np.array([[i % 2, 0] for i in range(m)])
    rounds = lambda xs, ys, n, seed: (xs[torch.arange(n) % len(xs)], ys[np.arange(n) % len(ys)])  # noqa: E731
    sets, made = training_sets(xr, yr, {"G": rounds}, (1, 5, 10, 50), seed=0, syn_only=True)
    assert len(made["G"][0]) == 50 * m
    for r in (1, 5, 10, 50):
        xs, ys = sets[f"G-only 1:{r}"]
        assert len(xs) == len(ys) == r * m and len(sets[f"real+G 1:{r}"][0]) == (1 + r) * m
        assert np.bincount(xs[:, 0, 0, 0].long().numpy(), minlength=m).tolist() == [r] * m  # r per real image
    # the LDM's reconstructions come in rounds, so its prefixes hold r variations per image too
    from latentmed.ldm.model import tiny_ldm
    from latentmed.ldm.synthesis import synthesize

    _, _, parents = synthesize(tiny_ldm(image_size=16), torch.zeros(4, 1, 16, 16), np.zeros((4, 1)),
                               "reconstruction", 12, steps=1, seed=5)
    for r in (1, 2, 3):
        assert np.bincount([p[0] for p in parents[: 4 * r]], minlength=4).tolist() == [r] * 4
    y = np.array([[i % 2, int(i % 5 == 0)] for i in range(60)])
    proto = AugmentProtocol(subsets=(20,), ratios=(1,), folds=5)
    splits = proto.splits(y, 20)
    held = np.concatenate([np.setdiff1d(np.concatenate(splits), tr) for tr in splits[:1]])
    assert len(splits) == 5 and all(len(tr) == 16 for tr in splits) and len(held) == 4
    assert sorted(set(np.concatenate(splits))) == sorted(set(splits[0]) | set(held))  # folds partition the subset
    assert all(abs(y[tr, 0].mean() - 0.5) <= 0.07 for tr in splits)  # stratified
    assert label_strata(np.array([[0], [0], [0], [1]]), 2).tolist() == ["0", "0", "0", "0"]  # a lone 1 joins
    fit, val = split_validation(y, np.arange(20), 0.2)
    assert len(val) == 4 and not set(fit) & set(val) and y[val, 0].sum() == 2
    with pytest.raises(LatentmedError, match="ratios must be integers >= 1"):
        AugmentProtocol(ratios=(0,))
    from latentmed.ldm.augment import ClassifierSpec

    with pytest.raises(LatentmedError, match="classifier size 16 is too small"):
        ClassifierSpec(arch="densenet121", size=16)


def test_variation_is_zero_for_a_copy_and_grows_with_a_known_perturbation(tmp_path):
    from latentmed.ldm.variation import (classifier_features, label_agreement, measure_variation,
                                         save_variation_plot, source_variation)
    from latentmed.train.classifier import fit_classifier

    x, y = _halves(12, size=16)
    src = np.array([0, 3, 5, 5, 11])
    copy = source_variation(x[src], src, x)
    assert np.allclose(copy["variation"], 0) and (copy["d_nearest_real"] > 0).all()
    noise = torch.randn(x[src].shape, generator=torch.Generator().manual_seed(0))
    small, large = (source_variation(x[src] + s * noise, src, x)["variation"] for s in (0.1, 0.4))
    np.testing.assert_allclose(large, 4 * small, rtol=1e-6)  # RMS distance: linear in the perturbation
    d = torch.cdist(x.flatten(1).double(), x.flatten(1).double()).fill_diagonal_(float("inf")).min(1).values
    np.testing.assert_allclose(copy["d_nearest_real"], d.numpy()[src] / 16, rtol=1e-6)  # RMS of 256 pixels
    gate = fit_classifier(x, y, epochs=30, seed=0)
    feat = source_variation(x[src] + 0.4 * noise, src, x, classifier_features(gate))
    assert (feat["variation"] > 0).all() and np.isfinite(feat["variation"]).all()
    assert label_agreement(np.array([[0.9, 0.2], [0.4, 0.6]]), np.array([[1, 0], [1, 1]])).tolist() == [1.0, 0.5]
    res = measure_variation("copies", x[src], y[src], src, x, gate)
    assert res.summary()["pixel_variation_median"] == 0 and res.agreement.shape == (5,)
    back = type(res).from_dict(json.loads(json.dumps(res.to_dict())))
    assert back.summary() == res.summary() and np.array_equal(back.features["variation"], res.features["variation"])
    assert save_variation_plot({"copies": res, "noisy": measure_variation("noisy", x[src] + 0.4 * noise, y[src],
                                                                          src, x, gate)}, tmp_path / "v.png").is_file()
    with pytest.raises(LatentmedError, match="one source index per synthetic image"):
        source_variation(x[:3], src, x)
    from latentmed.ldm.model import tiny_ldm
    from latentmed.ldm.variation import ldm_variation

    interp = ldm_variation(tiny_ldm(image_size=16), x.clamp(-1, 1), y, gate, "interpolation", n=6, steps=1)
    assert interp.name == "interpolation" and interp.pixels["variation"].shape == (6,)
    assert (interp.pixels["variation"] > 0).all()  # an untrained run does not copy its source


def test_early_stopping_rows_keep_the_validation_split_from_the_generators():
    from latentmed.ldm.augment import AugmentProtocol, ClassifierSpec, augment_rows

    x, y = _halves(40, size=16)
    seen = []

    def spy(xs, ys, n, seed):
        seen.append(xs.clone())
        return xs[torch.arange(n) % len(xs)], ys[np.arange(n) % len(ys)]

    res = augment_rows(x[:30], y[:30], x[30:], y[30:], {"copies": spy}, AugmentProtocol(subsets=(20,), ratios=(1, 3),
                       folds=2), ClassifierSpec(size=16, epochs=2, early_stopping=True), gate=False)
    assert [len(s) for s in seen] == [8, 8]  # 10 training images per fold, 2 held out for validation
    assert {r["setting"] for r in res.rows} == {"real", "real+copies 1:1", "real+copies 1:3"}
    assert all(len(r["aucs"]) == 2 for r in res.rows) and res.gate == {}
