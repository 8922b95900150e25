"""Counterfactual images with a tiny untrained DAE; end to end on the spine2d phantom (CLI included)."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from latentmed.cli import counterfactual as cf_cli
from latentmed.cli import grade as grade_cli
from latentmed.dae import DAEConfig, DiffusionAutoencoder
from latentmed.errors import LatentmedError
from latentmed.latent import HyperplaneGrader, load_grader, make_counterfactuals, save_latents
from latentmed.latent.counterfactual import load_images_by_id
from latentmed.nn import EncoderConfig

runner = CliRunner()
STEPS = 4


def tiny_dae(size=32, seed=0):
    torch.manual_seed(seed)
    cfg = DAEConfig(image_size=size, in_channels=1, model_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                    attention_resolutions=(), num_heads=1, dropout=0.0, z_dim=8,
                    encoder=EncoderConfig(channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=()))
    dae = DiffusionAutoencoder(cfg).eval()
    with torch.no_grad():  # zero-initialised output convs would make the decoder ignore z_sem
        for p in dae.parameters():
            if p.ndim > 1 and not p.abs().sum():
                p.normal_(0.0, 0.05)
    dae.load_state_dict(dae.state_dict())  # forget the cached model_id
    return dae


def test_make_counterfactuals_tiny_dae(tmp_path):
    dae = tiny_dae(size=16)
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 8))
    y = np.clip(np.round(z[:, 0] + 1.5), 0, 3).astype(int)
    grader = HyperplaneGrader(negative=(0,), positive=(2, 3), model_id=dae.model_id).fit(z, y)
    grades = [-1, 0, 2, 4]
    res = make_counterfactuals(dae, x, ["a", "b", "c"], grader, grades, steps=STEPS, out_dir=tmp_path, flip=True)
    assert res.counterfactuals.shape == (3, 5, 1, 16, 16) and res.labels == ["G-1", "G0", "G2", "G4", "flipped"]
    # 'unchanged' is exactly the plain inversion-based reconstruction on the same step grid
    np.testing.assert_allclose(res.reconstructions, dae.reconstruct(x, steps=STEPS).numpy(), atol=1e-6)
    assert np.isfinite(res.reconstruction_psnr).all()
    # target distances reach the grades; the flip keeps |distance| and changes the side
    z0 = dae.encode(x).double().numpy()
    np.testing.assert_allclose(grader.calibrate(res.target_distances[:, :4]), np.tile(grades, (3, 1)), atol=1e-8)
    np.testing.assert_allclose(res.target_distances[:, 4], -grader.signed_distance(z0), atol=1e-5)
    # moving the latent changes the image; decoding is deterministic
    assert np.abs(res.counterfactuals[:, 0] - res.counterfactuals[:, 3]).max() > 1e-4
    again = make_counterfactuals(dae, x, ["a", "b", "c"], grader, grades, steps=STEPS, flip=True)
    np.testing.assert_array_equal(again.counterfactuals, res.counterfactuals)
    summary = json.loads((tmp_path / "counterfactuals.json").read_text())
    assert summary["labels"][-1] == "flipped" and len(summary["files"]) == 3
    assert summary["target_grades"] == grades and len(summary["follow_slope"]) == 3
    assert all((tmp_path / f"{i}.png").is_file() for i in "abc")
    # moving along the class means: other latents, the same target distances, the same 'unchanged'
    means = make_counterfactuals(dae, x, ["a", "b", "c"], grader, grades, steps=STEPS, flip=True, direction="means")
    np.testing.assert_allclose(means.target_distances, res.target_distances, atol=1e-8)
    np.testing.assert_array_equal(means.reconstructions, res.reconstructions)
    assert np.abs(means.counterfactuals - res.counterfactuals).max() > 1e-4
    # a grader of another DAE is refused
    other = HyperplaneGrader(model_id="someone-else").fit(z, y)
    with pytest.raises(LatentmedError, match="grader was fitted on latents of DAE"):
        make_counterfactuals(dae, x, ["a", "b", "c"], other, grades, steps=STEPS)


def test_follow_slope_measures_how_far_decoded_grades_move():
    from latentmed.latent.counterfactual import CounterfactualResult

    targets = [-1.0, 0.0, 2.0, 4.0]
    got = np.array([[0.5 * t + 1 for t in targets], [2.0] * 4, [t - 3 for t in targets]])
    got = np.concatenate([got, np.full((3, 1), 9.0)], axis=1)  # a 'flipped' column is ignored
    empty = np.zeros((3, 1))
    res = CounterfactualResult(["a", "b", "c"], empty, empty, empty, ["G-1", "G0", "G2", "G4", "flipped"], empty,
                               empty, empty, empty, got, target_grades=targets)
    np.testing.assert_allclose(res.follow_slope(), [0.5, 0.0, 1.0], atol=1e-12)
    res.target_grades = [0.0]
    assert np.isnan(res.follow_slope()).all()


@pytest.fixture(scope="module")
def spine(tmp_path_factory):
    from latentmed.data.phantoms.spine2d import generate_spine2d

    root = tmp_path_factory.mktemp("spine")
    generate_spine2d(root / "data", 24, size=32, seed=0, grade_weights=[2, 1, 1, 1], adjacent_fracture_rate=0.0)
    return root


def test_spine2d_end_to_end_cli(spine, tmp_path):
    import pandas as pd

    data = spine / "data"
    labels = pd.read_csv(data / "labels.csv", dtype={"id": str})
    dae = tiny_dae(size=32)
    dae.save_pretrained(tmp_path / "run" / "model")
    ids = labels["id"].tolist()
    x = torch.as_tensor(load_images_by_id(data, ids))
    save_latents(tmp_path / "latents.npz", ids, dae.encode(x).numpy(), model_id=dae.model_id)
    res = runner.invoke(grade_cli.app, ["fit", "--latents", str(tmp_path / "latents.npz"), "--labels",
                                        str(data / "labels.csv"), "--column", "genant", "--negative", "0",
                                        "--positive", "2,3", "--holdout", "0.34", "--out", str(tmp_path / "grader")])
    assert res.exit_code == 0, res.output
    assert load_grader(tmp_path / "grader").model_id == dae.model_id
    res = runner.invoke(grade_cli.app, ["evaluate", str(tmp_path / "grader"), "--latents", str(tmp_path / "latents.npz"),
                                        "--labels", str(data / "labels.csv"), "--data", str(data), "--run",
                                        str(tmp_path / "run"), "--baseline-epochs", "2", "--no-tsne",
                                        "--out", str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "report" / "table.json").read_text())["rows"]
    assert [r["method"].split(":")[0].split(" (")[0] for r in rows] == [
        "latent svm + means", "raw pixels", "random encoder", "CNN"]
    assert all(0.0 <= r["macro_f1"] <= 1.0 and r["n"] == rows[0]["n"] for r in rows)
    # the "random encoder" row is the same probe on an untrained encoder of this architecture: not the trained one
    assert rows[2]["detection_auc"] != rows[0]["detection_auc"] or rows[2]["confusion"] != rows[0]["confusion"]
    res = runner.invoke(_cf_app(), [
        str(tmp_path / "run"), str(tmp_path / "grader"), "--data", str(data), "--ids", f"{ids[0]},{ids[1]}",
        "--traverse", "-1:4:3", "--flip", "--direction", "means", "--steps", str(STEPS), "--out", str(tmp_path / "cf")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "cf" / "counterfactuals.json").read_text())
    assert summary["ids"] == ids[:2] and summary["labels"] == ["G-1", "G1.5", "G4", "flipped"]
    assert (tmp_path / "cf" / f"{ids[0]}.png").is_file() and "follow slope" in res.output
    from test_report_html import check_report

    page = check_report(tmp_path / "cf" / "report.html")  # one grade slider per image, the flip as last frame
    sliders = [a for t, a, *_ in page.tags if t == "input"]
    assert len(sliders) == 2 and all(a["data-labels"] == '["G-1", "G1.5", "G4", "flipped"]' for a in sliders)
    assert "latentmed counterfactual" in " ".join(page.text) and "--flip" in " ".join(page.text)
    res = runner.invoke(_cf_app(), [str(tmp_path / "run"), str(tmp_path / "grader"), "--data", str(data), "--ids",
                                    ids[0], "--direction", "sideways", "--out", str(tmp_path / "cf2")])
    assert res.exit_code == 2 and "direction must be one of normal, normal-std, means, pattern" in res.output


def _cf_app():
    import typer

    app = typer.Typer()
    app.command()(cf_cli.counterfactual)
    return app
