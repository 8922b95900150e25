"""Counterfactual metrics on cases with a known answer: a copy is proximal and composed, noise is not
realistic, images of the asked grade are valid, a wrong grade is not; the DAE wrapper runs end to end."""

import math

import numpy as np
import pytest

from latentmed.errors import LatentmedError
from latentmed.evaluation.counterfactual import (counterfactual_markdown, counterfactual_metrics, fit_cnn_judge,
                                                 proximity, realism, validity)


@pytest.fixture(scope="module")
def phantoms():
    """[-1, 1] spine2d images at 32 px: by grade (G0, G3) and a held-out set."""
    from latentmed.data.phantoms.spine2d import render_spine2d

    def render(q, seed):
        return render_spine2d(q, ["T8", "T11", "L1", "L3"][seed % 4], 32, rng=seed, value_range=(-1, 1))[0][None]

    g0 = np.stack([render(0.03, 500 + i) for i in range(4)])
    g3 = np.stack([render(0.5, 600 + i) for i in range(4)])
    held = np.stack([render([0.0, 0.1, 0.3, 0.5][i % 4], 700 + i) for i in range(16)])
    return g0, g3, held


def test_validity_counts_exact_and_within_one_on_the_scale_only():
    got = np.array([[0, 1, 3, 3, 3], [-1, -1, 2, 3, 0]])  # -1: unreadable, never valid
    v = validity(got, [-1, 0, 2, 3, 4])  # G-1 and G4 columns are not counted
    assert v["exact"] == pytest.approx(3 / 6) and v["within_one"] == pytest.approx(5 / 6)
    assert v["by_target"] == {0: 0.0, 2: 0.5, 3: 1.0}
    with pytest.raises(LatentmedError, match="grades must be"):
        validity(got, [0, 1])


def test_a_copy_is_perfectly_proximal_composed_and_reversible(phantoms):
    g0, g3, held = phantoms
    x = np.concatenate([g0, g3])
    cf = np.repeat(x[:, None], 2, axis=1)
    m = counterfactual_metrics(x, x, cf, [0, 3], null_edit=x, returned=cf)
    assert m.proximity["l1_to_reconstruction"] == 0 and m.proximity["l1_to_input"] == 0
    assert m.composition["l1_null_to_reconstruction"] == 0 and m.reversibility["l1_return_to_reconstruction"] == 0
    assert m.reversibility["oracle_return_equals_input"] == 1.0
    assert math.isnan(m.cnn_validity) and math.isnan(m.proximity["lpips_to_input"])
    # the floor is the unedited inputs' validity: a copy scores exactly the floor
    assert (m.floor["exact"], m.floor["within_one"]) == (m.validity, m.validity_within_one)
    right = counterfactual_metrics(x, x, np.stack([np.concatenate([g0, g0]), np.concatenate([g3, g3])], 1), [0, 3])
    assert right.floor == m.floor and right.validity > m.floor["exact"]  # the floor depends on the inputs only
    noisy = x + 0.5
    assert proximity(noisy[:, None], x, x)["l1_to_input"] == pytest.approx(0.5, abs=1e-6)


def test_images_of_the_asked_grade_are_valid_and_swapped_ones_are_not(phantoms):
    g0, g3, _ = phantoms
    right = np.stack([g0, g3], axis=1)  # [4, 2, 1, 32, 32]: column 0 asked G0, column 1 asked G3
    good = counterfactual_metrics(g0, g0, right, [0, 3], labels=[0] * 4)
    bad = counterfactual_metrics(g0, g0, right[:, ::-1], [0, 3])
    assert good.validity_within_one >= 0.75 and good.validity > bad.validity
    assert bad.validity_within_one <= 0.25
    curve = good.transition
    assert [t["target"] for t in curve] == [0.0, 3.0] and curve[1]["oracle_grade"] > curve[0]["oracle_grade"]
    judge = lambda imgs: np.tile([0, 3], len(imgs) // 2)  # a judge that always reads the asked grade
    assert counterfactual_metrics(g0, g0, right, [0, 3], cnn=judge).cnn_validity == 1.0
    text = counterfactual_markdown(good)
    assert text.index("Validity (height oracle)") < text.index("Validity (supervised CNN)") < text.index("Proximity")


def test_noise_is_not_realistic_real_images_are(phantoms):
    g0, g3, held = phantoms
    real = np.concatenate([g0, g3])
    noise = np.random.default_rng(0).uniform(-1, 1, size=real.shape).astype(np.float32)
    r_real, r_noise = realism(held, real), realism(held, noise)
    assert r_real["precision"] >= 0.5 and r_noise["precision"] == 0.0 and r_noise["recall"] == 0.0
    assert r_noise["fid"] > 5 * r_real["fid"]


def test_cnn_judge_reads_grades_on_its_scale(phantoms):
    g0, g3, _ = phantoms
    x = np.concatenate([g0, g3])
    judge = fit_cnn_judge(x, [0] * 4 + [3] * 4, epochs=2)
    out = judge(x)
    assert out.shape == (8,) and set(out.tolist()) <= {0, 1, 2, 3}


def test_evaluate_counterfactuals_with_a_tiny_dae(phantoms):
    from test_counterfactual import tiny_dae

    from latentmed.evaluation.counterfactual import evaluate_counterfactuals
    from latentmed.latent import HyperplaneGrader

    g0, g3, held = phantoms
    dae = tiny_dae(size=32)
    x = np.concatenate([g0[:2], g3[:2]])
    import torch

    z = dae.encode(torch.as_tensor(held)).double().numpy()
    y = np.array([0, 1, 2, 3] * 4)
    grader = HyperplaneGrader(negative=(0,), positive=(2, 3), model_id=dae.model_id).fit(z, y)
    res, m = evaluate_counterfactuals(dae, grader, x, list("abcd"), [0, 3], labels=[0, 0, 3, 3], steps=3,
                                      direction="normal", heldout=held)
    assert res.counterfactuals.shape == (4, 2, 1, 32, 32) and m.oracle_grade.shape == (4, 2)
    # the null edit is the reconstruction: the same latent decoded from the same x_T
    assert m.composition["l1_null_to_reconstruction"] < 1e-5
    assert np.isfinite(m.reversibility["l1_return_to_reconstruction"]) and np.isfinite(m.realism["counterfactuals"]["fid"])


def test_perfect_counterfactuals_are_the_same_vertebra_at_the_asked_grade(tmp_path):
    """The ceiling's generator: a phantom image re-rendered with its own loss is the image itself (to the PNG's
    rounding); at another grade it is the same vertebra (closer to its own image than to the other inputs)
    whose rendered grade is the asked one; a folder that is not a spine2d phantom has no ceiling."""
    import json

    import pandas as pd
    from PIL import Image

    from latentmed.data.phantoms.spine2d import GRADE_LOSS_RANGES, generate_spine2d, rerender_spine2d
    from latentmed.evaluation.counterfactual import perfect_counterfactuals

    generate_spine2d(tmp_path / "p", n=6, size=32, seed=4)
    settings = json.loads((tmp_path / "p" / "phantom.json").read_text())
    labels = pd.read_csv(tmp_path / "p" / "labels.csv")
    for i, row in labels.iterrows():
        own, info = rerender_spine2d(settings, i, row.height_loss)
        png = np.asarray(Image.open(tmp_path / "p" / row.image), dtype=np.float64) / 255
        assert np.abs(own - png).max() <= 1 / 255 and info["genant"] == row.genant  # labels keep 4 decimals of the loss
    ids = list(labels.id)
    perfect = perfect_counterfactuals(tmp_path / "p", ids, [-1, 0, 1, 2, 3, 4])
    assert perfect.shape == (6, 4, 1, 32, 32) and perfect.min() >= -1 and perfect.max() <= 1
    for g in range(4):
        assert rerender_spine2d(settings, 0, float(np.mean(GRADE_LOSS_RANGES[g])))[1]["genant"] == g
    originals = np.stack([np.asarray(Image.open(tmp_path / "p" / f), dtype=np.float32) / 127.5 - 1
                          for f in labels.image])
    dist = np.abs(perfect[:, 3, 0][:, None] - originals[None]).mean(axis=(2, 3))  # [edited i, original j]
    assert (dist.argmin(axis=1) == np.arange(6)).all()
    assert perfect_counterfactuals(tmp_path, ids, [0, 3]) is None  # no phantom.json: no ceiling
    with pytest.raises(LatentmedError, match="not in its labels.csv"):
        perfect_counterfactuals(tmp_path / "p", ["nope"], [0])
