"""LinearProbe / HyperplaneGrader: exact oracles on synthetic latents, sklearn contract, persistence."""

import warnings

import numpy as np
import pytest

from latentmed.errors import LatentmedError
from latentmed.latent import (HyperplaneGrader, LinearProbe, grade_latents, load_grader, move_to_distance,
                              parse_calibration, reflect, save_grader, signed_distance, traverse)
from latentmed.latent import grader as grader_mod
from latentmed.latent import probe as probe_mod

D = 6
NORMAL = np.array([3.0, -1.0, 0.0, 2.0, 0.5, 0.0])
UNIT = NORMAL / np.linalg.norm(NORMAL)


def synthetic(n_per_grade=40, seed=0, spread=0.15):
    """Latents whose grade is a known linear function of the distance along UNIT: dist = g - 1.5."""
    rng = np.random.default_rng(seed)
    grades = np.repeat(np.arange(4), n_per_grade)
    dist = grades - 1.5 + spread * rng.normal(size=len(grades))
    noise = rng.normal(size=(len(grades), D))
    noise -= np.outer(noise @ UNIT, UNIT)  # orthogonal to the normal
    z = noise + np.outer(dist, UNIT) + 5.0  # offset: the hyperplane does not pass through 0
    return z, grades, dist


def test_latent_math_exact_oracle():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(10, D))
    b = 0.7
    d = signed_distance(z, NORMAL, b)
    np.testing.assert_allclose(d, (z @ NORMAL + b) / np.linalg.norm(NORMAL))
    w_ce = reflect(z, NORMAL, b)
    np.testing.assert_allclose(signed_distance(w_ce, NORMAL, b), -d, atol=1e-12)
    np.testing.assert_allclose(w_ce, z - 2 * d[:, None] * UNIT, atol=1e-12)  # w - 2 dist(w) n / ||n||
    np.testing.assert_allclose(reflect(w_ce, NORMAL, b), z, atol=1e-12)     # an involution
    moved = move_to_distance(z, NORMAL, b, 2.5)
    np.testing.assert_allclose(signed_distance(moved, NORMAL, b), 2.5, atol=1e-12)
    np.testing.assert_allclose((moved - z) @ np.linalg.svd(np.eye(D) - np.outer(UNIT, UNIT))[0][:, :D - 1], 0,
                               atol=1e-12)  # only the normal component changes
    path = traverse(z[:2], NORMAL, b, -1.0, 3.0, 5)
    assert path.shape == (2, 5, D)
    np.testing.assert_allclose(signed_distance(path[1], NORMAL, b), np.linspace(-1, 3, 5), atol=1e-12)
    # along another direction u: w + s u, still exactly at the target distance
    u = UNIT + rng.normal(size=D) * 0.3
    moved_u = move_to_distance(z, NORMAL, b, 2.5, direction=u)
    np.testing.assert_allclose(signed_distance(moved_u, NORMAL, b), 2.5, atol=1e-12)
    step = moved_u - z
    np.testing.assert_allclose(step / np.linalg.norm(step, axis=1, keepdims=True),
                               np.sign(2.5 - d)[:, None] * u / np.linalg.norm(u), atol=1e-12)  # parallel to u
    np.testing.assert_allclose(signed_distance(reflect(z, NORMAL, b, u), NORMAL, b), -d, atol=1e-12)
    np.testing.assert_allclose(move_to_distance(z, NORMAL, b, 2.5, direction=3 * UNIT), moved, atol=1e-12)
    path_u = traverse(z[:2], NORMAL, b, -1.0, 3.0, 5, direction=u)
    np.testing.assert_allclose(signed_distance(path_u[0], NORMAL, b), np.linspace(-1, 3, 5), atol=1e-12)
    ortho = np.linalg.svd(np.eye(D) - np.outer(UNIT, UNIT))[0][:, 0]
    for bad in (ortho, -UNIT):  # along the hyperplane, or pointing to the negative side
        with pytest.raises(LatentmedError, match="cosine .* with the hyperplane's normal"):
            move_to_distance(z, NORMAL, b, 1.0, direction=bad)
    with pytest.raises(LatentmedError, match="dimensions"):
        move_to_distance(z, NORMAL, b, 1.0, direction=np.ones(D + 1))


def test_grader_class_means_and_move_direction(tmp_path):
    from latentmed.latent.counterfactual import move_direction

    z, y, _ = synthetic(seed=3)
    g = HyperplaneGrader(negative=(0,), positive=(2, 3)).fit(z, y)
    np.testing.assert_allclose(g.class_means_, [z[y == 0].mean(0), z[y >= 2].mean(0)])  # input space, G1 left out
    assert move_direction(g, "normal") is None
    np.testing.assert_allclose(move_direction(g, "means"), z[y >= 2].mean(0) - z[y == 0].mean(0))
    moved, dist = grade_latents(g, z[:4], [-1, 0, 3, 4], direction="means")
    np.testing.assert_allclose(g.predict_continuous(moved.reshape(-1, z.shape[1])).reshape(4, 4),
                               np.tile([-1, 0, 3, 4], (4, 1)), atol=1e-9)
    save_grader(g, tmp_path / "g")
    np.testing.assert_allclose(load_grader(tmp_path / "g").class_means_, g.class_means_)
    with pytest.raises(LatentmedError, match="direction must be one of normal, normal-std, means, pattern"):
        move_direction(g, "pca")
    del g.class_means_  # as loaded from a grader saved before class means were kept
    with pytest.raises(LatentmedError, match="refit it"):
        move_direction(g, "means")


def test_four_directions_land_at_target_distance(tmp_path):
    """normal, normal-std (diag(Cov) n), means, pattern (Cov(z) n, Haufe et al. 2014): exact vectors and distances."""
    from latentmed.latent.counterfactual import DIRECTIONS, move_direction

    z, y, _ = synthetic(seed=5)
    z = z * np.array([1.0, 3.0, 0.2, 1.0, 5.0, 1.0])  # anisotropic: the four directions differ
    g = HyperplaneGrader(negative=(0,), positive=(2, 3), classifier="logreg").fit(z, y)
    used = z[y != 1]
    cov = np.cov(used, rowvar=False, bias=True)
    expected = {"normal": None, "normal-std": np.diag(cov) * g.normal_, "means": used[y[y != 1] >= 2].mean(0)
                - used[y[y != 1] == 0].mean(0), "pattern": cov @ g.normal_}
    save_grader(g, tmp_path / "g")
    reloaded = load_grader(tmp_path / "g")
    targets = [-1.0, 0.0, 1.5, 3.0, 4.0]
    for d in DIRECTIONS:
        u = move_direction(g, d)
        if expected[d] is None:
            assert u is None
        else:
            np.testing.assert_allclose(u, expected[d], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(move_direction(reloaded, d), u)
        moved, dist = grade_latents(g, z[:7], targets, direction=d)
        np.testing.assert_allclose(g.signed_distance(moved.reshape(-1, D)).reshape(7, -1), np.tile(dist, (7, 1)),
                                   atol=1e-9)
        np.testing.assert_allclose(g.predict_continuous(moved.reshape(-1, D)).reshape(7, -1), np.tile(targets, (7, 1)),
                                   atol=1e-9)
        step = moved[:, -1] - moved[:, 0]  # the move is along u (or n) only
        ref = g.normal_ if u is None else u
        np.testing.assert_allclose(np.abs(step @ ref) / (np.linalg.norm(step, axis=1) * np.linalg.norm(ref)), 1.0,
                                   atol=1e-9)
    # the directions really differ on anisotropic latents
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    assert cos(expected["pattern"], g.normal_) < 0.99 and cos(expected["normal-std"], g.normal_) < 0.99


def test_probe_class_weight_dict_keyed_by_labels():
    z, y, _ = synthetic(seed=2)
    keep = y != 1
    z, y = z[keep], np.where(y[keep] == 0, 1, 2)  # labels {1, 2}
    for clf in ("svm", "logreg", "linear"):
        heavy = LinearProbe(clf, class_weight={1: 1.0, 2: 10.0}, random_state=0).fit(z, y)
        mapped = LinearProbe(clf, class_weight={0: 1.0, 1: 10.0}, random_state=0).fit(z, (y == 2).astype(int))
        np.testing.assert_allclose(heavy.coef_, mapped.coef_, rtol=1e-6, atol=1e-8)
        plain = LinearProbe(clf, random_state=0).fit(z, y)
        assert not np.allclose(heavy.intercept_, plain.intercept_)  # the weights did something
    names = np.where(y == 1, "healthy", "fracture")
    p = LinearProbe("logreg", class_weight={"healthy": 1.0, "fracture": 10.0}).fit(z, names)
    assert set(p.predict(z)) <= {"healthy", "fracture"}
    with pytest.raises(LatentmedError, match=r"label\(s\) \[3\] that are not in y"):
        LinearProbe("svm", class_weight={1: 1.0, 3: 2.0}).fit(z, y)
    bal = HyperplaneGrader(negative=(0,), positive=(2, 3), class_weight="balanced").fit(*synthetic(seed=2)[:2])
    assert bal.probe_.class_weight == "balanced"


@pytest.mark.parametrize("classifier", ["svm", "logreg", "linear"])
def test_grader_recovers_known_hyperplane(classifier):
    z, y, dist = synthetic()
    g = HyperplaneGrader(negative=(0,), positive=(2, 3), classifier=classifier, C=10.0, max_iter=200, calibration="means",
                         calibration_grades=(0, 3), random_state=0).fit(z, y)
    assert abs(g.normal_ @ UNIT) > 0.99
    assert np.isclose(np.linalg.norm(g.normal_), 1.0)
    # true signed distance in the input space: (w.z + b)/||w||
    np.testing.assert_allclose(g.signed_distance(z), (z @ g.coef_[0] + g.intercept_[0]) / np.linalg.norm(g.coef_))
    # 'means' passes exactly through the mean distances of G0 and G3
    d = g.signed_distance(z)
    np.testing.assert_allclose(g.calibrate([d[y == 0].mean(), d[y == 3].mean()]), [0.0, 3.0], atol=1e-10)
    assert (g.predict(z) == y).mean() > 0.9
    # the calibrated severity is (up to the small probe error) the oracle grade dist + 1.5
    err = np.abs(g.predict_continuous(z) - (dist + 1.5))
    assert err.mean() < 0.1 and err.max() < 0.4


def test_calibrations_and_inverse():
    z, y, _ = synthetic(seed=3)
    for spec in ["means:0,3", "poly:1:0,2,3", "poly:3:0,1,2,3"]:
        g = HyperplaneGrader(negative=(0,), positive=(2, 3), random_state=0, **parse_calibration(spec)).fit(z, y)
        targets = np.array([-1.0, 0.0, 1.5, 3.0, 4.0])  # outside the scale allowed
        d = g.inverse_calibrate(targets)
        np.testing.assert_allclose(g.calibrate(d), targets, atol=1e-8)
        moved, dists = grade_latents(g, z[:3], targets)
        np.testing.assert_allclose(dists, d)
        np.testing.assert_allclose(g.predict_continuous(moved.reshape(-1, D)), np.tile(targets, 3), atol=1e-8)
    # poly degree 1 on G0, G2, G3 equals numpy's least squares line
    g = HyperplaneGrader(negative=(0,), positive=(2, 3), calibration="poly", calibration_grades=(0, 2, 3)).fit(z, y)
    dd = g.signed_distance(z)
    m = np.isin(y, [0, 2, 3])
    np.testing.assert_allclose(g.calibration_coef_[::-1], np.polyfit(dd[m], y[m], 1), rtol=1e-8)


def test_predict_rounds_clips_and_healthy_below():
    z, y, _ = synthetic(seed=4)
    g = HyperplaneGrader(negative=(0,), positive=(2, 3), healthy_below=2).fit(z, y)
    np.testing.assert_array_equal(g.round_grades([-3.0, 0.4, 1.4, 1.6, 2.6, 9.0]), [0, 0, 0, 2, 3, 3])
    g.set_params(healthy_below=None)
    np.testing.assert_array_equal(g.round_grades([-3.0, 0.4, 1.4, 1.6, 2.6, 9.0]), [0, 0, 1, 2, 3, 3])


def test_standardisation_matches_sklearn_pipeline_and_reports_input_space():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    z, y, _ = synthetic(seed=5)
    z = z * np.array([1, 10, 0.1, 3, 1, 1])  # badly scaled features
    yb = (y >= 2).astype(int)
    ours = LinearProbe("logreg", C=0.3, standardize=True).fit(z, yb)
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=0.3)).fit(z, yb)
    np.testing.assert_allclose(ours.decision_function(z), ref.decision_function(z), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.predict_proba(z), ref.predict_proba(z), atol=1e-6)
    # one signed distance: the probe's and a grader's equal the margin over ||w|| of the input-space coefficients
    w = ref[-1].coef_[0] / ref[0].scale_
    margin_over_norm = ref.decision_function(z) / np.linalg.norm(w)
    np.testing.assert_allclose(ours.signed_distance(z), margin_over_norm, rtol=1e-6, atol=1e-6)
    grader = HyperplaneGrader(negative=(0,), positive=(2, 3), classifier="logreg", C=0.3).fit(z, y)
    np.testing.assert_allclose(grader.signed_distance(z), signed_distance(z, grader.coef_[0], grader.intercept_[0]))
    # torch linear layer with cross-entropy reaches the same optimum as sklearn's logistic regression
    lin = LinearProbe("linear", C=0.3, random_state=0).fit(z, yb)
    ref_margin = ours.decision_function(z)
    assert np.abs(lin.decision_function(z) - ref_margin).max() < 5e-3 * np.abs(ref_margin).max()
    assert not hasattr(LinearProbe("svm").fit(z, yb), "predict_proba")


def test_pipeline_cross_val_and_several_columns():
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    z, y, _ = synthetic(seed=6)
    scores = cross_val_score(make_pipeline(StandardScaler(), HyperplaneGrader(negative=(0,), positive=(2, 3))),
                             z, y, cv=3)
    assert scores.mean() > 0.8
    assert cross_val_score(LinearProbe("logreg"), z, (y > 1).astype(int), cv=3, scoring="roc_auc").mean() > 0.95
    # a second task on the same latents: a flipped grading column
    g1 = HyperplaneGrader(negative=(0,), positive=(2, 3)).fit(z, y)
    g2 = HyperplaneGrader(negative=(0,), positive=(2, 3)).fit(z, 3 - y)
    assert g1.normal_ @ g2.normal_ < -0.99


def test_check_estimator_contract():
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for est in [LinearProbe("linear", random_state=0), LinearProbe("svm", random_state=0),
                    HyperplaneGrader(classifier="logreg", random_state=0),
                    HyperplaneGrader(classifier="svm", random_state=0)]:  # sample-weight equivalence passes
            mod = grader_mod if isinstance(est, HyperplaneGrader) else probe_mod
            check_estimator(est, expected_failed_checks=mod.expected_failed_checks(est), on_skip=None)


def test_bad_input_errors():
    z, y, _ = synthetic(n_per_grade=10)
    with pytest.raises(LatentmedError, match="only one class"):
        HyperplaneGrader(negative=(0,), positive=(2, 3)).fit(z[y < 2], y[y < 2])
    with pytest.raises(LatentmedError, match=r"calibration grade\(s\) \[1\] have no samples"):
        HyperplaneGrader(negative=(0,), positive=(2, 3), calibration="means",
                         calibration_grades=(0, 1)).fit(z[y != 1], y[y != 1])
    with pytest.raises(LatentmedError, match="integers"):
        HyperplaneGrader().fit(z, y + 0.5)
    with pytest.raises(ValueError, match="NaN"):
        HyperplaneGrader().fit(np.where(np.eye(len(z), D, dtype=bool), np.nan, z), y)
    with pytest.raises(LatentmedError, match="not understood"):
        parse_calibration("spline:3")
    g = HyperplaneGrader(model_id="dae-A").fit(z, y)
    with pytest.raises(LatentmedError, match="dimension 4"):
        g.check_latents(z[:, :4])
    with pytest.raises(LatentmedError, match="DAE 'dae-B'"):
        g.check_latents(z, "dae-B")
    with pytest.raises(LatentmedError, match="Only binary"):
        LinearProbe().fit(z, y)


def test_save_load_roundtrip(tmp_path):
    z, y, _ = synthetic(seed=7)
    g = HyperplaneGrader(negative=(0,), positive=(2, 3), classifier="logreg", calibration="poly",
                         calibration_grades=(0, 2, 3), degree=3, healthy_below=2, model_id="abc").fit(z, y)
    save_grader(g, tmp_path / "g", metadata={"column": "genant"})
    assert not list((tmp_path / "g").glob("*.pkl"))
    h = load_grader(tmp_path / "g")
    assert h.get_params() == g.get_params()
    assert h.metadata_ == {"column": "genant"}
    np.testing.assert_array_equal(h.predict(z), g.predict(z))
    np.testing.assert_allclose(h.predict_continuous(z), g.predict_continuous(z))
    np.testing.assert_allclose(h.inverse_calibrate([-1, 4]), g.inverse_calibrate([-1, 4]))
    np.testing.assert_allclose(h.recalibrate("means", (0, 3)).predict_continuous(z),
                               g.recalibrate("means", (0, 3)).predict_continuous(z))
    p = LinearProbe("svm").fit(z, (y > 1).astype(int))
    save_grader(p, tmp_path / "p")
    np.testing.assert_allclose(load_grader(tmp_path / "p").decision_function(z), p.decision_function(z))
    with pytest.raises(LatentmedError, match="not a grader folder"):
        load_grader(tmp_path / "missing")
