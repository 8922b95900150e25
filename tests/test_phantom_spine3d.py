import csv

import nibabel as nib
import numpy as np
from scipy import ndimage
from typer.testing import CliRunner

from latentmed.cli.phantom import app as phantom_app
from latentmed.data.phantoms.spine3d import (
    CSV_COLUMNS,
    PARTS,
    generate_spine3d,
    parts_path,
    spine3d_cases,
    vertebra_mask,
    vertebra_parts,
)
from latentmed.shape.volumes import list_masks, simulate_thick_slices


def test_generate_writes_binary_niftis_parts_and_labels(tmp_path):
    csv_path = generate_spine3d(tmp_path, 6, size=32, seed=0) / "labels.csv"
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["level"] for r in rows] == ["L1", "L2", "L3", "L4", "L5", "L1"]
    assert [r["individual"] for r in rows] == ["0"] * 5 + ["1"]
    assert len({r["person"] for r in rows[:5]}) == 1 and rows[5]["person"] != rows[0]["person"]
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [p.name for p in list_masks(tmp_path)] == [r["mask"] for r in rows]  # parts/ is not listed
    for r in rows:
        assert r["id"] + ".nii.gz" == r["mask"] and tmp_path / r["parts"] == parts_path(tmp_path / r["mask"])
        img = nib.load(str(tmp_path / r["mask"]))
        data = np.asanyarray(img.dataobj)
        parts = np.asanyarray(nib.load(str(parts_path(tmp_path / r["mask"]))).dataobj)
        assert data.shape == parts.shape == (32, 32, 32)
        assert set(np.unique(data)) == {0, 1}
        assert np.array_equal(parts > 0, data > 0) and parts.max() <= max(PARTS)
        assert int(data.sum()) == int(r["volume"])
        assert np.allclose(img.header.get_zooms(), 1.0)
        # one connected vertebra, centred on its centre of mass, not touching the cube faces
        assert ndimage.label(data, structure=np.ones((3, 3, 3)))[1] == 1
        assert np.abs(np.array(ndimage.center_of_mass(data)) - 15.5).max() <= 1.0
        idx = np.argwhere(data)
        assert idx.min() >= 1 and idx.max() <= 30


def test_anatomy_parts_and_variation():
    labels, p = vertebra_parts(64, 2, np.random.default_rng(0))
    assert set(np.unique(labels)) == {0, *PARTS}  # body, pedicles, laminae, spinous, transverse, articular
    m = labels > 0
    assert (labels == 1).sum() > 0.5 * m.sum()
    # the posterior elements lie behind the body (axis 1: posterior -> anterior)
    com = {k: ndimage.center_of_mass(labels == k) for k in PARTS}
    assert com[4][1] < com[3][1] < com[2][1] < com[1][1]
    # transverse processes reach beyond the body left and right
    body_x = np.argwhere(labels == 1)[:, 2]
    trans_x = np.argwhere(labels == 5)[:, 2]
    assert trans_x.min() < body_x.min() and trans_x.max() > body_x.max()
    # the vertebral foramen: a hole in the axial projection of body, pedicles and laminae
    ring = np.isin(labels, (1, 2, 3)).any(0)
    assert ndimage.label(~ring)[1] >= 2
    # left-right asymmetry: the mask is not its own mirror image
    assert (m != m[:, :, ::-1]).sum() > 0.05 * m.sum()
    # bodies grow caudally (mean over individuals), and individuals differ
    rng = np.random.default_rng(1)
    l1 = np.mean([vertebra_mask(32, 0, rng, person=1.0)[1]["body_width"] for _ in range(6)])
    l5 = np.mean([vertebra_mask(32, 4, rng, person=1.0)[1]["body_width"] for _ in range(6)])
    assert l5 > l1
    a, _ = vertebra_mask(32, 0, np.random.default_rng(5))
    b, _ = vertebra_mask(32, 0, np.random.default_rng(6))
    assert (a != b).any()


def test_floor_and_thick_slices_on_a_small_sample():
    """The constant majority mask is a poor fit and sagittal thick slices under-segment (32^3, small n)."""
    cases = [labels for _, labels, _ in spine3d_cases(10, 32, seed=1)]
    masks = np.stack([c > 0 for c in cases])
    const = masks[:5].mean(0) > 0.5
    dice = [2 * (const & t).sum() / (const.sum() + t.sum()) for t in masks[5:]]
    assert np.mean(dice) < 0.85
    coarse = simulate_thick_slices(masks[5])  # defaults: 6 mm sagittal slabs, partial volume 0.75
    tp = (coarse & masks[5]).sum()
    assert tp / coarse.sum() > 0.9 > tp / masks[5].sum()  # precision high, recall lower


def test_deterministic_by_seed(tmp_path):
    generate_spine3d(tmp_path / "a", 2, size=16, seed=3)
    generate_spine3d(tmp_path / "b", 2, size=16, seed=3)
    generate_spine3d(tmp_path / "c", 2, size=16, seed=4)
    load = lambda d: np.asanyarray(nib.load(str(d / "spine3d_0001.nii.gz")).dataobj)  # noqa: E731
    assert np.array_equal(load(tmp_path / "a"), load(tmp_path / "b"))
    assert not np.array_equal(load(tmp_path / "a"), load(tmp_path / "c"))


def test_cli_command(tmp_path):
    res = CliRunner().invoke(phantom_app, ["spine3d", str(tmp_path / "out"), "--n", "2", "--size", "16", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "labels.csv").is_file()
    assert len(list((tmp_path / "out").glob("*.nii.gz"))) == 2
    assert len(list((tmp_path / "out" / "parts").glob("*.nii.gz"))) == 2
    assert (tmp_path / "out" / "phantom.json").is_file()
    again = CliRunner().invoke(phantom_app, ["spine3d", str(tmp_path / "out"), "--n", "2", "--size", "16"])
    assert again.exit_code == 2 and "not empty" in again.output  # a finished data set is not overwritten
    bad = CliRunner().invoke(phantom_app, ["spine3d", str(tmp_path / "bad"), "--n", "0"])
    assert bad.exit_code == 2
