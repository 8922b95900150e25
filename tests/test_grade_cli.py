"""`latentmed grade fit/predict/evaluate` and the workflow functions on synthetic latents with known grades."""

import json

import numpy as np
import pandas as pd
import pytest
from test_latent_estimators import synthetic
from typer.testing import CliRunner

from latentmed.cli import grade as grade_cli
from latentmed.errors import LatentmedError
from latentmed.latent import (evaluate_grader, fit_grader, fit_graders, load_grader, load_latents, predict_grades,
                              save_latents)

runner = CliRunner()


@pytest.fixture()
def dataset(tmp_path):
    z, y, _ = synthetic(n_per_grade=30, seed=11)
    ids = np.array([f"case{i:03d}" for i in range(len(y))])
    save_latents(tmp_path / "latents.npz", ids, z.astype(np.float32), model_id="dae123")
    pd.DataFrame({"id": ids, "genant": y, "fracture": (y >= 2).astype(int), "level": ids.astype("U5")}).to_csv(
        tmp_path / "labels.csv", index=False)
    return tmp_path


def test_latents_roundtrip_and_errors(tmp_path):
    save_latents(tmp_path / "a.npz", ["x", "y"], np.ones((2, 3)), x_T=np.zeros((2, 1, 4, 4)), model_id="m")
    lat = load_latents(tmp_path / "a.npz")
    assert lat.ids.tolist() == ["x", "y"] and lat.z_sem.dtype == np.float32 and lat.x_T.shape == (2, 1, 4, 4)
    assert lat.model_id == "m"
    np.savez(tmp_path / "nan.npz", ids=np.array(["a", "b"]), z_sem=np.array([[0.0, np.nan], [1, 2]]))
    with pytest.raises(LatentmedError, match="NaN/inf in 1 row"):
        load_latents(tmp_path / "nan.npz")
    with pytest.raises(LatentmedError, match="duplicates"):
        save_latents(tmp_path / "d.npz", ["a", "a"], np.ones((2, 3)))


def test_cli_fit_predict_evaluate(dataset):
    d = dataset
    res = runner.invoke(grade_cli.app, [
        "fit", "--latents", str(d / "latents.npz"), "--labels", str(d / "labels.csv"), "--column", "genant",
        "--negative", "0", "--positive", "2,3", "--classifier", "logreg", "--calibration", "means:0,3",
        "--holdout", "0.3", "--out", str(d / "grader")])
    assert res.exit_code == 0, res.output
    g = load_grader(d / "grader")
    assert g.model_id == "dae123" and g.metadata_["column"] == "genant" and len(g.metadata_["holdout_ids"]) == 36
    res = runner.invoke(grade_cli.app, ["predict", str(d / "grader"), "--latents", str(d / "latents.npz"),
                                        "--out", str(d / "grades.csv")])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(d / "grades.csv")
    truth = pd.read_csv(d / "labels.csv")
    assert list(pred.columns) == ["id", "distance", "grade_continuous", "grade"]
    assert (pred["grade"].values == truth["genant"].values).mean() > 0.9
    res = runner.invoke(grade_cli.app, ["evaluate", str(d / "grader"), "--latents", str(d / "latents.npz"),
                                        "--labels", str(d / "labels.csv"), "--calibrations",
                                        "poly:1:0,2,3;poly:3:0,2,3", "--tsne-column", "fracture,level",
                                        "--out", str(d / "report")])
    assert res.exit_code == 0, res.output
    report = json.loads((d / "report" / "table.json").read_text())
    assert [r["method"] for r in report["rows"]] == ["latent logreg + means:0,3", "latent logreg + poly:1:0,2,3",
                                                    "latent logreg + poly:3:0,2,3"]
    assert report["n_test"] == 36
    assert report["protocol"] == "papers"
    for r in report["rows"]:  # papers' protocol: G1 (9 held-out samples) left out, F1 over G0, G2, G3
        assert r["detection_auc"] > 0.95 and r["macro_f1"] > 0.7 and r["mae"] < 0.3
        assert np.sum(r["confusion"]) == 27 and r["f1_grades"] == [0, 2, 3] and r["n"] == 27
        lo, hi = r["detection_auc_ci"]
        assert lo <= r["detection_auc"] <= hi
    for r in report["rows_all"]:
        assert np.sum(r["confusion"]) == 36 and r["f1_grades"] == [0, 1, 2, 3]
    table = (d / "report" / "table.md").read_text()
    assert "| method | detection AUC (95% CI) |" in table and "Confusion matrix" in table
    assert table.index("papers' protocol") < table.index("all grades G0-G3")
    for name in ("tsne_fracture.png", "tsne_level.png", "calibration.png"):
        assert (d / "report" / name).is_file(), name


def test_workflow_matches_direct_estimator_and_several_columns(dataset):
    d = dataset
    graders = fit_graders(d / "latents.npz", d / "labels.csv", ["genant", "fracture"], out=d / "multi",
                          classifier="svm")
    assert (d / "multi" / "genant" / "grader.json").is_file() and (d / "multi" / "fracture" / "grader.json").is_file()
    assert graders["fracture"].classes_.tolist() == [0, 1]
    df = predict_grades(d / "multi" / "genant", d / "latents.npz")
    lat = load_latents(d / "latents.npz")
    np.testing.assert_allclose(df["distance"], graders["genant"].signed_distance(lat.z_sem))
    # evaluating on explicit ids works even when they were used for training
    rep = evaluate_grader(graders["genant"], lat, d / "labels.csv", ids=lat.ids[:20])
    assert len(rep.ids) == 20 and rep.to_dict()["n_test"] == 20 and rep.tsne is None


def test_bad_inputs(dataset, tmp_path):
    d = dataset
    lab = pd.read_csv(d / "labels.csv")
    other = lab.assign(id="other_" + lab["id"])
    with pytest.raises(LatentmedError, match="share no ids"):
        fit_grader(d / "latents.npz", other, "genant")
    with pytest.raises(LatentmedError, match="no samples"):
        fit_grader(d / "latents.npz", lab[lab.genant != 3], "genant", negative=[0], positive=[2],
                   calibration="means:0,3")
    with pytest.raises(LatentmedError, match="only one class"):
        fit_grader(d / "latents.npz", lab[lab.genant < 2], "genant", negative=[0], positive=[2, 3])
    g = fit_grader(d / "latents.npz", lab, "genant")
    with pytest.raises(LatentmedError, match="nothing is held out"):
        evaluate_grader(g, d / "latents.npz", lab)
    lat = load_latents(d / "latents.npz")
    save_latents(tmp_path / "other_dae.npz", lat.ids, lat.z_sem, model_id="another")
    with pytest.raises(LatentmedError, match="DAE 'another'"):
        predict_grades(g, tmp_path / "other_dae.npz")
    save_latents(tmp_path / "small.npz", lat.ids, lat.z_sem[:, :3], model_id="dae123")
    with pytest.raises(LatentmedError, match="dimension 3"):
        predict_grades(g, tmp_path / "small.npz")
    res = runner.invoke(grade_cli.app, ["fit", "--latents", str(d / "latents.npz"), "--labels", str(d / "labels.csv"),
                                        "--column", "nope", "--out", str(tmp_path / "g")])
    assert res.exit_code == 2 and "no column 'nope'" in res.output
    res = runner.invoke(grade_cli.app, ["fit", "--latents", str(d / "latents.npz"), "--labels", str(d / "labels.csv"),
                                        "--column", "genant", "--calibration", "cubic", "--out", str(tmp_path / "g")])
    assert res.exit_code == 2 and "not understood" in res.output
    res = runner.invoke(grade_cli.app, ["evaluate", str(tmp_path / "g"), "--latents", str(d / "latents.npz"), "--labels",
                                        str(d / "labels.csv"), "--run", "run", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "pass --data DIR too" in res.output


def test_papers_protocol_hand_computed():
    """AUC G0 vs G2+G3 (G1 out); macro-F1 over G0, G2, G3 with predictions below G2 counted healthy."""
    from latentmed.latent.evaluation import bootstrap_auc, grading_metrics

    y = [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]
    pred = [0, 1, 2, 0, 2, 2, 1, 3, 2, 3]
    score = [0.1, 0.4, 0.35, 0.9, 0.2, 0.8, 0.3, 0.9, 0.7, 0.95]
    kw = dict(negative=(0,), positive=(2, 3), scale=(0, 1, 2, 3))
    papers = grading_metrics(y, score, pred, protocol="papers", **kw)
    # kept: y in {0,2,3} -> 8 samples; predictions [0,0,2,2,0,3,2,3] after "below G2 is healthy"
    # F1: G0 2/3, G2 0.4, G3 0.8; AUC: 13 of 15 positive-negative pairs ordered
    assert papers["n"] == 8 and papers["f1_grades"] == [0, 2, 3]
    assert papers["macro_f1"] == pytest.approx((2 / 3 + 0.4 + 0.8) / 3)
    assert papers["detection_auc"] == pytest.approx(13 / 15)
    assert papers["mae"] == pytest.approx(5 / 8) and papers["accuracy"] == pytest.approx(5 / 8)
    assert papers["confusion"] == [[2, 1, 0], [1, 1, 0], [0, 1, 2]]
    every = grading_metrics(y, score, pred, protocol="all", **kw)
    # all grades: F1 G0 0.4, G1 0, G2 1/3, G3 0.8; the AUC is the same (G1 out either way)
    assert every["n"] == 10 and every["macro_f1"] == pytest.approx((0.4 + 0 + 1 / 3 + 0.8) / 4)
    assert every["detection_auc"] == pytest.approx(13 / 15)
    lo, hi = bootstrap_auc([0, 0, 0, 1, 1, 1, 1, 1], [0.1, 0.4, 0.35, 0.8, 0.3, 0.9, 0.7, 0.95], seed=1)
    assert 0.4 < lo < 13 / 15 < hi <= 1.0
    assert bootstrap_auc([0, 0, 1, 1], [0, 0.1, 0.5, 0.9]) == (1.0, 1.0)  # perfectly separated: no spread
