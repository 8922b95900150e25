"""Ground truth of the chest2d phantom: CTR from the saved masks matches the labels."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from latentmed.data.phantoms.chest2d import cardiothoracic_ratio, generate_chest2d, render_chest2d
from latentmed.errors import LatentmedError


def _ctr_from_png(path) -> float:
    m = np.asarray(Image.open(path))
    heart = np.nonzero((m == 3).any(axis=0))[0]
    lungs = np.nonzero(np.isin(m, [1, 2]).any(axis=0))[0]
    return (heart.max() - heart.min() + 1) / (lungs.max() - lungs.min() + 1)


def test_generate_files_and_ctr_ground_truth(tmp_path):
    csv_path = generate_chest2d(tmp_path / "c", n=24, size=64, seed=3) / "labels.csv"
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == 24
    assert {"id", "image", "mask", "cardiomegaly", "effusion", "opacity", "ctr"} <= set(rows[0])
    seen = {k: set() for k in ("cardiomegaly", "effusion", "opacity")}
    for r in rows:
        img = np.asarray(Image.open(csv_path.parent / r["image"]))
        mask = np.asarray(Image.open(csv_path.parent / r["mask"]))
        assert img.shape == mask.shape == (64, 64) and img.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1, 2, 3} and {1, 2, 3} <= set(np.unique(mask))
        ctr = _ctr_from_png(csv_path.parent / r["mask"])
        assert abs(ctr - float(r["ctr"])) < 1e-3
        assert int(r["cardiomegaly"]) == int(ctr > 0.5)
        assert abs(ctr - 0.5) > 0.01  # labels are not on the pixelation edge
        # radiological convention: patient's left lung (1) on the image right, heart shifted left-of-patient
        cols = np.arange(64)[None, :].repeat(64, 0)
        assert cols[mask == 1].mean() > cols[mask == 2].mean()
        assert cols[mask == 3].mean() > 31.5 - 3
        # lungs are dark, heart is bright
        assert img[mask == 3].mean() > img[np.isin(mask, [1, 2])].mean() + 60
        for k in seen:
            seen[k].add(int(r[k]))
    assert all(v == {0, 1} for v in seen.values()), "each label should occur both ways in 24 samples"
    # same seed -> identical files
    again = generate_chest2d(tmp_path / "d", n=2, size=64, seed=3)
    a = np.asarray(Image.open(csv_path.parent / rows[1]["image"]))
    b = np.asarray(Image.open(again / "images" / f"{rows[1]['id']}.png"))
    np.testing.assert_array_equal(a, b)


def test_effusion_removes_aerated_lateral_base_and_opacity_brightens_lung():
    kw = dict(cardiomegaly=False, opacity=False, noise=0.0)
    no = render_chest2d(64, 11, effusion=False, **kw)
    eff = render_chest2d(64, 11, effusion=True, **kw)
    lung_no, lung_eff = np.isin(no.mask, [1, 2]), np.isin(eff.mask, [1, 2])
    assert not (lung_eff & ~lung_no).any()  # fluid only removes aerated lung
    removed = lung_no & ~lung_eff
    assert removed.sum() > 10
    rows, cols = np.nonzero(removed)
    assert rows.mean() > 32  # in the lower half (costophrenic angles)
    assert eff.image[removed].mean() > no.image[removed].mean() + 0.2  # fluid is dense
    op = render_chest2d(64, 11, effusion=False, cardiomegaly=False, opacity=True, noise=0.0)
    diff = (op.image - no.image)[lung_no]
    assert op.labels["opacity"] == 1 and diff.max() > 0.15


def test_sixteen_bit_and_errors(tmp_path):
    p = generate_chest2d(tmp_path, n=1, size=32, bit_depth=16)
    assert np.asarray(Image.open(p / "images" / "chest_0000.png")).max() > 255
    with pytest.raises(LatentmedError, match="bit_depth"):
        generate_chest2d(tmp_path, n=1, bit_depth=12)
    with pytest.raises(LatentmedError, match="heart"):
        cardiothoracic_ratio(np.zeros((8, 8), np.uint8))


def test_varied_variant_has_pose_exposure_variety_and_heart_between_lungs():
    """Issue 16: the ``varied`` phantom varies much more than ``classic`` and keeps anatomy consistent."""
    from latentmed.data.phantoms.chest2d import STYLES, cardiothoracic_ratio, render_chest2d

    def stats(variant):
        out = []
        for i in range(24):
            s = render_chest2d(64, np.random.default_rng([7, i]), variant=variant)
            rows, cols = np.indices(s.mask.shape)
            lungs, left, right = np.isin(s.mask, [1, 2]), s.mask == 1, s.mask == 2
            tilt = np.arctan2(rows[left].mean() - rows[right].mean(), cols[left].mean() - cols[right].mean())
            out.append((tilt, rows[lungs].mean(), lungs.sum(), s.image[~lungs].mean(), s))
        return out

    classic, varied = stats("classic"), stats("varied")
    for k in range(4):  # rotation (tilt of the lung axis), lung height, lung area, brightness outside the lungs
        assert np.std([v[k] for v in varied]) > 1.3 * np.std([c[k] for c in classic])
    for *_, s in varied:
        rows, cols = np.indices(s.mask.shape)
        heart, left, right = s.mask == 3, s.mask == 1, s.mask == 2
        # the heart lies between the lungs: horizontally between their centroids, its centre above
        # the lungs' lowest row (it sits on the diaphragm, not on the abdomen)
        assert cols[right].mean() < cols[heart].mean() < cols[left].mean()
        assert rows[heart].mean() < max(rows[left].max(), rows[right].max()) - 3
        assert s.labels["cardiomegaly"] == int(cardiothoracic_ratio(s.mask) > 0.5)
    assert STYLES["classic"].rotation_deg == 0 and not STYLES["classic"].exposure
    with pytest.raises(LatentmedError, match="variant"):
        render_chest2d(64, 0, variant="nope")
