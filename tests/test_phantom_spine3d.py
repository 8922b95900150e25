import csv

import nibabel as nib
import numpy as np
import typer
from scipy import ndimage
from typer.testing import CliRunner

from latentmed.cli.shape import phantom_spine3d
from latentmed.data.phantoms.spine3d import CSV_COLUMNS, generate_spine3d, vertebra_mask


def test_generate_writes_binary_niftis_and_labels(tmp_path):
    csv_path = generate_spine3d(tmp_path, 6, size=32, seed=0)
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["level"] for r in rows] == ["L1", "L2", "L3", "L4", "L5", "L1"]
    assert [r["individual"] for r in rows] == ["0"] * 5 + ["1"]
    assert tuple(rows[0]) == CSV_COLUMNS
    for r in rows:
        img = nib.load(str(tmp_path / r["file"]))
        data = np.asanyarray(img.dataobj)
        assert data.shape == (32, 32, 32)
        assert set(np.unique(data)) == {0, 1}
        assert int(data.sum()) == int(r["volume"])
        assert np.allclose(img.header.get_zooms(), 1.0)
        # one connected vertebra, centred on its centre of mass, not touching the cube faces
        assert ndimage.label(data)[1] == 1
        assert np.abs(np.array(ndimage.center_of_mass(data)) - 15.5).max() <= 1.0
        idx = np.argwhere(data)
        assert idx.min() >= 1 and idx.max() <= 30


def test_anatomy_and_variation():
    m, p = vertebra_mask(64, 2, np.random.default_rng(0))
    idx = np.argwhere(m)
    lr_extent = idx[:, 2].max() - idx[:, 2].min() + 1
    assert lr_extent > p["body_width"] + 8  # transverse processes reach beyond the body
    # the posterior arch: foreground behind the body along axis 1, in the midline (spinous process)
    body_back = idx[:, 1].max() - p["body_depth"]
    assert m[:, : int(body_back) - 5, 30:34].any()
    # the vertebral foramen is a hole in the axial slice through the arch
    z_arch = int(np.argmax(m[:, : int(body_back), :].sum((1, 2))))
    assert ndimage.label(~m[z_arch])[1] >= 2
    # bodies grow caudally (mean over individuals), and individuals differ
    rng = np.random.default_rng(1)
    l1 = np.mean([vertebra_mask(32, 0, rng)[1]["body_width"] for _ in range(6)])
    l5 = np.mean([vertebra_mask(32, 4, rng)[1]["body_width"] for _ in range(6)])
    assert l5 > l1
    a, _ = vertebra_mask(32, 0, np.random.default_rng(5))
    b, _ = vertebra_mask(32, 0, np.random.default_rng(6))
    assert (a != b).any()


def test_deterministic_by_seed(tmp_path):
    generate_spine3d(tmp_path / "a", 2, size=16, seed=3)
    generate_spine3d(tmp_path / "b", 2, size=16, seed=3)
    generate_spine3d(tmp_path / "c", 2, size=16, seed=4)
    load = lambda d: np.asanyarray(nib.load(str(d / "spine3d_0001.nii.gz")).dataobj)  # noqa: E731
    assert np.array_equal(load(tmp_path / "a"), load(tmp_path / "b"))
    assert not np.array_equal(load(tmp_path / "a"), load(tmp_path / "c"))


def test_cli_command(tmp_path):
    app = typer.Typer()
    app.command()(phantom_spine3d)
    res = CliRunner().invoke(app, [str(tmp_path / "out"), "--n", "2", "--size", "16", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "labels.csv").is_file()
    assert len(list((tmp_path / "out").glob("*.nii.gz"))) == 2
    bad = CliRunner().invoke(app, [str(tmp_path / "bad"), "--n", "0"])
    assert bad.exit_code == 2 and "at least 1" in bad.output
