import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from latentmed.errors import LatentmedError
from latentmed.shape.volumes import (
    MaskDataset,
    ResampledWarning,
    augment_mask,
    crop_to_cube,
    load_mask,
    simulate_thick_slices,
)


def _save(path, data, zooms=(1.0, 1.0, 1.0)):
    data = np.asarray(data)
    img = nib.Nifti1Image(data, np.diag([*zooms, 1.0]))
    img.header.set_zooms(zooms[: data.ndim])
    nib.save(img, str(path))
    return path


def _blob(shape=(16, 16, 16), centre=(8, 8, 8), r=4):
    g = np.indices(shape)
    return (sum((g[i] - centre[i]) ** 2 for i in range(3)) <= r * r)


def test_load_mask_bad_inputs(tmp_path):
    with pytest.raises(LatentmedError, match="threshold"):
        load_mask(_save(tmp_path / "soft.nii.gz", _blob().astype(np.float32) * 0.7))
    m, _ = load_mask(tmp_path / "soft.nii.gz", threshold=0.5)
    assert m.sum() == _blob().sum()
    with pytest.raises(LatentmedError, match="empty"):
        load_mask(_save(tmp_path / "empty.nii.gz", np.zeros((8, 8, 8), np.uint8)))
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti at all")
    with pytest.raises(LatentmedError, match="cannot read NIfTI"):
        load_mask(tmp_path / "broken.nii.gz")
    with pytest.raises(LatentmedError, match="3D"):
        load_mask(_save(tmp_path / "flat.nii.gz", np.ones((4, 4), np.uint8)))


def test_anisotropic_spacing_is_resampled_with_warning(tmp_path):
    data = _blob((8, 16, 16), (4, 8, 8), 3)
    with pytest.warns(ResampledWarning, match="resampled"):
        m, info = load_mask(_save(tmp_path / "aniso.nii.gz", data.astype(np.uint8), (2.0, 1.0, 1.0)))
    assert info.resampled and info.spacing == (2.0, 1.0, 1.0)
    assert m.shape == (16, 16, 16)
    assert np.array_equal(m[::2], data)  # nearest neighbour keeps every source slice


def test_crop_to_cube_centres_and_refuses_too_large():
    vol = np.zeros((40, 30, 50), bool)
    vol[5:11, 20:26, 40:46] = True
    cube = crop_to_cube(vol, 16)
    assert cube.shape == (16, 16, 16) and cube.sum() == vol.sum()
    assert np.allclose(ndimage.center_of_mass(cube), 7.5, atol=1.0)
    with pytest.raises(LatentmedError, match="sticks out of a 4\\^3 cube"):
        crop_to_cube(vol, 4)


def test_augment_is_seeded_and_zooms_volume():
    m = _blob((32, 32, 32), (16, 16, 16), 6)
    a = augment_mask(m, np.random.default_rng(0))
    b = augment_mask(m, np.random.default_rng(0))
    assert np.array_equal(a, b)
    big = augment_mask(m, np.random.default_rng(1), zoom=(1.1, 1.1), max_shift=0)
    assert 1.15 < big.sum() / m.sum() < 1.55  # 1.1^3 = 1.33
    shifted = augment_mask(m, np.random.default_rng(2), zoom=(1.0, 1.0), max_shift=7)
    d = np.array(ndimage.center_of_mass(shifted)) - np.array(ndimage.center_of_mass(m))
    assert shifted.sum() == m.sum() and np.abs(d).max() <= 7 and np.allclose(d, np.round(d))


def test_thick_slices_partial_volume():
    m = _blob((20, 12, 12), (9, 6, 6), 5)
    assert np.array_equal(simulate_thick_slices(m, 1, 0), m)
    c = simulate_thick_slices(m, 5, 0, threshold=0.5)
    for s in range(4):  # every slab is one repeated slice = threshold of the slab mean
        slab = c[s * 5:(s + 1) * 5]
        assert (slab == slab[0]).all()
        assert np.array_equal(slab[0], m[s * 5:(s + 1) * 5].mean(0) > 0.5)
    c1 = simulate_thick_slices(m, 4, 1)
    assert (c1[:, 0:4] == c1[:, 0:1]).all()
    lin = simulate_thick_slices(m, 5, 0, threshold=0.5, mode="linear")
    assert lin.shape == m.shape and not np.array_equal(lin, c)
    n1 = simulate_thick_slices(m, 5, 0, threshold=0.5, boundary_noise=0.3, seed=1)
    assert np.array_equal(n1, simulate_thick_slices(m, 5, 0, threshold=0.5, boundary_noise=0.3, seed=1))
    assert not np.array_equal(n1, c)
    b1 = simulate_thick_slices(m, 5, 0, threshold=0.5, blobs=4, blob_radius=1.5, seed=2)
    assert np.array_equal(b1, simulate_thick_slices(m, 5, 0, threshold=0.5, blobs=4, blob_radius=1.5, seed=2))
    assert (b1 & ~c).any() and (c & ~b1).any()  # blobs added and holes cut
    assert (simulate_thick_slices(m, 3) == simulate_thick_slices(m, 3, 2, threshold=0.75)).all()  # defaults
    with pytest.raises(LatentmedError, match="thickness"):
        simulate_thick_slices(m, 0, 0)
    with pytest.raises(LatentmedError, match="axis"):
        simulate_thick_slices(m, 2, 3)


def test_mask_dataset(tmp_path):
    for i in range(2):
        _save(tmp_path / f"m{i}.nii.gz", _blob((20, 20, 20), (10, 9 + i, 10), 4).astype(np.uint8))
    ds = MaskDataset(tmp_path, 16, augment=True, seed=0)
    item = ds[1]
    assert item["x"].shape == (1, 16, 16, 16) and item["x"].dtype.is_floating_point
    assert set(item["x"].unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(LatentmedError, match="no NIfTI"):
        MaskDataset(_empty_dir(tmp_path), 16)


def _empty_dir(tmp_path):
    d = tmp_path / "empty_dir"
    d.mkdir()
    return d
