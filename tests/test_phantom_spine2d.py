"""spine2d phantom: ground truth geometry, Genant mapping, the generator and its CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from latentmed.data.phantoms import GENANT_THRESHOLDS, fracture_flag, genant_grade
from latentmed.data.phantoms.spine2d import generate_spine2d, render_spine2d
from latentmed.errors import LatentmedError


def test_genant_grade_boundaries():
    assert GENANT_THRESHOLDS == (0.20, 0.25, 0.40)
    losses = np.array([0.0, 0.199, 0.20, 0.249, 0.25, 0.40, 0.401, 0.7])
    assert genant_grade(losses).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert genant_grade(0.3) == 2 and isinstance(genant_grade(0.3), int)
    assert fracture_flag(genant_grade(losses)).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(LatentmedError, match="fraction"):
        genant_grade(30)


@pytest.mark.parametrize("shape", ["wedge", "biconcave", "crush"])
def test_measured_height_loss_matches_request(shape):
    rng = np.random.default_rng(0)
    for loss, level in [(0.0, "T6"), (0.22, "T12"), (0.33, "L1"), (0.55, "L4")]:
        img, info = render_spine2d(loss, level, 64, rng, shape=shape)
        assert img.shape == (64, 64) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
        assert abs(info["measured_height_loss"] - loss) < 0.03, (shape, level, info)
        assert info["genant"] == genant_grade(loss) and info["level"] == level
        h = info["heights_mm"]
        where = {"wedge": "anterior", "biconcave": "middle", "crush": "anterior"}[shape]
        if loss > 0:  # the largest loss is where the shape puts it
            assert h[where] == pytest.approx(min(h.values()), abs=0.3)


def test_fracture_is_visible_and_levels_differ_in_size():
    # Same seed, so the same anatomy and noise: only the centre vertebra changes.
    normal, info0 = render_spine2d(0.0, "L1", 64, 3, shape="crush", noise=0.0)
    broken, info3 = render_spine2d(0.5, "L1", 64, 3, shape="crush", noise=0.0)
    r, c = (int(round(v)) for v in info0["centre_px"][::-1])
    diff = np.abs(normal - broken)
    assert diff[r - 12:r + 12, c - 12:c + 12].mean() > 5 * diff[:, :8].mean() + 0.02  # change is local
    assert render_spine2d(0.0, "T5", 64, 1)[1]["reference_height_mm"] < render_spine2d(0.0, "L4", 64, 1)[1][
        "reference_height_mm"]
    signed, _ = render_spine2d(0.3, "T10", 32, 5, value_range=(-1, 1), adjacent_fracture=True)
    assert signed.min() >= -1 and signed.min() < 0 and signed.shape == (32, 32)
    with pytest.raises(LatentmedError, match="unknown spinal level"):
        render_spine2d(0.1, "X9", 64, 0)


def test_crop_jitter_moves_the_centre_vertebra_and_keeps_its_grade():
    def offset(info):  # distance of the graded vertebra from the image centre, in body heights
        return np.hypot(*(np.array(info["centre_px"]) - 16)) * info["pixel_mm"] / info["reference_height_mm"]

    plain = [render_spine2d(0.3, "L1", 32, s)[1] for s in range(16)]
    jittered = [render_spine2d(0.3, "L1", 32, s, jitter=0.4)[1] for s in range(16)]
    far = max(offset(i) for i in plain)
    assert sum(offset(i) > far for i in jittered) >= 4 and max(offset(i) for i in jittered) > far + 0.2
    assert all(abs(i["measured_height_loss"] - 0.3) < 0.03 and i["genant"] == 2 for i in jittered)
    # jitter=0 draws nothing: the default images are unchanged
    assert np.array_equal(render_spine2d(0.3, "L1", 32, 5)[0], render_spine2d(0.3, "L1", 32, 5, jitter=0.0)[0])
    with pytest.raises(LatentmedError, match="jitter"):
        render_spine2d(0.3, "L1", 32, 5, jitter=1.5)


def _rows(path):
    with open(path / "labels.csv") as fh:
        return list(csv.DictReader(fh))


def test_generate_labels_consistent_reproducible_and_weighted(tmp_path):
    out = generate_spine2d(tmp_path / "a", n=12, size=32, seed=7, grade_weights=[0, 0, 1, 1],
                           adjacent_fracture_rate=0.5)
    rows = _rows(out)
    assert [r["id"] for r in rows] == [f"spine2d_{i:05d}" for i in range(12)]
    for r in rows:
        g = int(r["genant"])
        assert g in (2, 3) and g == genant_grade(float(r["height_loss"])) and int(r["fracture"]) == 1
        assert abs(float(r["measured_height_loss"]) - float(r["height_loss"])) < 0.05
        assert (out / "images" / f"{r['id']}.png").is_file()
    assert 0 < sum(int(r["adjacent_fracture"]) for r in rows) < 12
    again = generate_spine2d(tmp_path / "b", n=3, size=32, seed=7, grade_weights=[0, 0, 1, 1],
                             adjacent_fracture_rate=0.5)
    assert (again / "images" / "spine2d_00002.png").read_bytes() == (out / "images" / "spine2d_00002.png").read_bytes()
    with pytest.raises(LatentmedError, match="not empty"):
        generate_spine2d(out, n=2)
    with pytest.raises(LatentmedError, match="grade_weights"):
        generate_spine2d(tmp_path / "c", n=2, grade_weights=[1, 2])


def test_cli_spine2d_writes_a_dataset_open_images_reads(tmp_path):
    from latentmed.cli.phantom import app
    from latentmed.data import open_images

    runner = CliRunner()
    res = runner.invoke(app, ["spine2d", str(tmp_path / "ph"), "--n", "6", "--size", "32", "--seed", "1",
                              "--grade-weights", "1,0,0,1", "--adjacent-fracture-rate", "0"])
    assert res.exit_code == 0, res.output
    ds = open_images(tmp_path / "ph" / "images", labels=tmp_path / "ph" / "labels.csv")
    assert len(ds) == 6 and ds.image_size == 32
    assert set(float(ds[i]["labels"]["genant"]) for i in range(6)) <= {0.0, 3.0}
    bad = runner.invoke(app, ["spine2d", str(tmp_path / "x"), "--n", "2", "--grade-weights", "1,a"])
    assert bad.exit_code == 2 and "grade_weights" in bad.output
    assert "Example" in runner.invoke(app, ["spine2d", "--help"]).output


def test_cli_spine2d_jitter_reaches_the_generator(tmp_path):
    """``--jitter`` is recorded in phantom.json and moves pixels against the centred phantom of the same seed."""
    import json

    from PIL import Image

    from latentmed.cli.phantom import app

    runner = CliRunner()
    for name, extra in (("plain", []), ("jit", ["--jitter", "0.4"])):
        res = runner.invoke(app, ["spine2d", str(tmp_path / name), "--n", "3", "--size", "32", "--seed", "2", *extra])
        assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "jit" / "phantom.json").read_text())
    assert meta["jitter"] == 0.4
    plain = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "plain" / "images").glob("*.png"))]
    jit = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "jit" / "images").glob("*.png"))]
    assert any((a != b).any() for a, b in zip(plain, jit))
    assert runner.invoke(app, ["spine2d", str(tmp_path / "bad"), "--jitter", "1.5"]).exit_code == 2
