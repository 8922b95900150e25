import numpy as np
import pytest

from latentmed.errors import LatentmedError
from latentmed.shape.evaluate import constant_mask, paired_test, posterior_region, score_cases
from latentmed.shape.training import ShapeDataConfig


def _cube(lo, hi, s=12):
    m = np.zeros((s, s, s), bool)
    m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    return m


def test_precision_recall_hd95_and_posterior_region():
    truth = _cube((2, 2, 2), (8, 8, 8))
    pred = _cube((2, 2, 2), (8, 8, 5))  # half the truth, nothing outside it
    s = score_cases(truth[None], pred[None])
    assert s["precision"][0] == 1.0 and s["sensitivity"][0] == pytest.approx(0.5)
    assert s["dice"][0] == pytest.approx(2 / 3) and s["hausdorff95"][0] > 0
    parts = truth.astype(np.uint8)
    parts[:, :, 5:8][truth[:, :, 5:8]] = 3  # "lamina" on the right half
    region = posterior_region(parts)
    assert region[4, 4, 7] and not region[4, 4, 2]
    assert region[4, 4, 11]  # background nearest to the posterior part counts as posterior
    post = score_cases(truth[None], pred[None], region[None])
    assert post["sensitivity"][0] == 0.0 and post["dice"][0] == 0.0  # the prediction misses the posterior part
    assert posterior_region(np.stack([parts, parts])).shape == (2, 12, 12, 12)


def test_constant_mask_is_the_majority():
    a, b, c = _cube((0, 0, 0), (6, 6, 6)), _cube((0, 0, 0), (6, 6, 4)), _cube((0, 0, 0), (4, 6, 6))
    floor = constant_mask(np.stack([a, b, c]))
    assert floor[1, 1, 1] and not floor[5, 5, 5] and floor[5, 1, 1] and not floor[11, 11, 11]
    with pytest.raises(LatentmedError):
        constant_mask(a)


def test_paired_test():
    a = np.array([0.80, 0.82, 0.85, 0.79, 0.90, 0.88])
    out = paired_test(a, a - 0.05 + np.array([0.0, 0.01, -0.01, 0.0, 0.02, -0.02]))
    assert out["n"] == 6 and out["mean_difference"] == pytest.approx(0.05) and out["t_pvalue"] < 0.01
    same = paired_test(a, a)
    assert same["mean_difference"] == 0.0 and np.isnan(same["t_pvalue"])
    with pytest.raises(LatentmedError, match="paired"):
        paired_test(a, a[:3])


def test_shift_fraction_is_validated():
    assert ShapeDataConfig().shift_fraction == pytest.approx(0.055)  # the paper's 7 voxels at 128^3
    with pytest.raises(LatentmedError, match="shift_fraction"):
        ShapeDataConfig(shift_fraction=0.7)


def test_part_cubes_follow_the_truths_crop_and_resampling(tmp_path):
    """Part maps at 2 mm are resampled and cropped exactly like their masks (labels survive, no shift)."""
    import warnings

    from latentmed.data.formats import write_nifti
    from latentmed.data.phantoms.spine3d import parts_path
    from latentmed.shape.evaluate import load_pairs, load_part_cubes

    parts = np.zeros((10, 12, 9), np.uint8)
    parts[2:7, 3:8, 2:6] = 1
    parts[3:5, 8:11, 3:5] = 3  # an arch behind the body, off-centre
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    for folder in ("truth", "coarse"):
        write_nifti(parts > 0, tmp_path / folder / "case.nii.gz", affine=affine, dtype=np.uint8)
    write_nifti(parts, parts_path(tmp_path / "truth" / "case.nii.gz"), affine=affine, dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the announced 2 mm -> 1 mm resampling
        names, _, truth = load_pairs(tmp_path / "coarse", tmp_path / "truth", 32)
        cubes = load_part_cubes(tmp_path / "truth", names, 32)
    assert cubes.shape == (1, 32, 32, 32) and np.array_equal(cubes > 0, truth)
    assert set(np.unique(cubes)) == {0, 1, 3} and (cubes == 3).sum() == 8 * (parts == 3).sum()
    write_nifti(np.zeros_like(parts), parts_path(tmp_path / "truth" / "case.nii.gz"), affine=affine, dtype=np.uint8)
    with pytest.raises(LatentmedError, match="non-empty 3D part-label map"):
        load_part_cubes(tmp_path / "truth", names, 32)
