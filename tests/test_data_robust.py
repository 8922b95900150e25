"""Readers on real sample files and damaged ones: 2D slices, NaN, CIFTI, one-line errors, --skip-bad, notices.

Seeds are the sample files pydicom and nibabel ship (no download); damaged copies are made here.
"""

import io
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from latentmed.data import open_images
from latentmed.errors import LatentmedError

nib = pytest.importorskip("nibabel")
pydicom = pytest.importorskip("pydicom")
from nibabel.testing import data_path as NIB_DATA  # noqa: E402
from pydicom.data import get_testdata_file  # noqa: E402

CT = Path(get_testdata_file("CT_small.dcm"))  # one axial CT slice, 128x128, HU via rescale


def _one_line_naming(exc: BaseException, path) -> str:
    msg = str(exc)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


def _notes():
    seen: list[str] = []
    return seen, seen.append


def _save_nifti(path, data, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), str(path))
    return path


# --------------------------------------------------------------------------------- 1. a single slice is one image
def test_single_dicom_slice_is_one_2d_image_in_stored_order():
    ds = pydicom.dcmread(str(CT))
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    notes, report = _notes()
    images = open_images(CT, window="400,1800", report=report)  # default axis (sagittal) must not cut it
    assert len(images) == 1 and images.ids == ["CT_small"] and images.image_size == 128
    lo, hi = 400 - 900, 400 + 900
    np.testing.assert_allclose(images[0]["image"][0].numpy(), np.clip((hu - lo) / (hi - lo), 0, 1) * 2 - 1, atol=1e-5)
    assert notes == ["read 1 single-slice file(s) as one 2D image each"]
    for axis in ("coronal", 0, 2):  # any axis: still the one stored image
        assert open_images(CT, axis=axis, window="bone", report=report).image_size == 128


def test_clean_2d_nifti_is_one_image_shown_in_its_plane(tmp_path):
    a = np.arange(6 * 5, dtype=np.float32).reshape(6, 5)  # x (R) by y (A)
    for path, data in ((tmp_path / "flat.nii.gz", a), (tmp_path / "thin.nii.gz", a[..., None])):
        _save_nifti(path, data)
        images = open_images(path, value_range=(0, 29))
        assert len(images) == 1 and images.ids == [path.name[:-7]] and images.image_size == (5, 6)
        # an axial slice in the axial view: rows anterior -> posterior, columns patient's right on the left
        np.testing.assert_allclose(images[0]["image"][0].numpy(), (a[::-1, ::-1].T / 29) * 2 - 1, atol=1e-6)
    with pytest.raises(LatentmedError, match="slice 3 is out of range .*1 slice"):
        open_images(tmp_path / "flat.nii.gz", slices=3)


def test_window_slices_and_nan_options_parse_as_text(tmp_path):
    data = np.random.default_rng(0).integers(-1000, 2000, (4, 5, 6)).astype(np.int16)
    path = _save_nifti(tmp_path / "v.nii.gz", data)
    assert open_images(path, axis="2", slices="1,3:5", window="bone").ids == ["v_0001", "v_0003", "v_0004"]
    with pytest.raises(LatentmedError, match="slices '1,x'"):
        open_images(path, slices="1,x")
    with pytest.raises(LatentmedError, match="window 'bony'.*preset"):
        open_images(path, window="bony")
    with pytest.raises(LatentmedError, match="nan_to 'zero'"):
        open_images(path, nan_to="zero")


def test_data_config_section_carries_window_axis_and_slices(tmp_path):
    from latentmed.config import load_config
    from latentmed.dae import DAERunConfig

    cfg = load_config(DAERunConfig, None, ["data.window=bone", "data.axis=2", "data.slices=1:3", "data.nan_to=0"])
    assert cfg.data.read_options() == {"axis": "2", "window": "bone", "slices": "1:3", "nan_to": "0",
                                       "skip_bad": False, "allow_gaps": False}
    cfg2 = load_config(DAERunConfig, None, ["data.window=400,1800"])
    assert cfg2.data.window == "400,1800"
    path = _save_nifti(tmp_path / "v.nii.gz", np.full((4, 5, 6), 3000, np.int16))
    img = open_images(path, **cfg.data.read_options())
    assert img.ids == ["v_0001", "v_0002"] and float(img[0]["image"].min()) == 1.0  # above the bone window


# --------------------------------------------------------------------------------- 2. NaN voxels
def test_nan_voxels_error_names_the_file_or_are_replaced(tmp_path):
    a = np.linspace(0, 1, 4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6) * 100
    a[1, 2, 3] = np.nan
    a[2, 2, 2] = np.inf
    path = _save_nifti(tmp_path / "nan.nii.gz", a)
    with pytest.raises(LatentmedError) as err:
        open_images(path, axis=0)[1]
    assert "2 of 120 voxels are NaN or infinite" in _one_line_naming(err.value, path) and "nan_to" in str(err.value)
    notes, report = _notes()
    zero = open_images(path, axis=0, nan_to=0, value_range=(0, 100), report=report)
    assert float(zero[1]["image"][0, 2, 3]) == -1.0 and np.isfinite(zero[2]["image"].numpy()).all()
    assert [n for n in notes if n.startswith("replaced")] == [
        f"replaced 2 NaN/inf voxel(s) of {path} by 0.0 (further replacements in these data are not announced)"]
    low = open_images(path, axis=0, nan_to="min")
    assert float(low[1]["image"][0, 2, 3]) == -1.0  # the volume's smallest finite value maps to -1
    all_nan = _save_nifti(tmp_path / "allnan.nii.gz", np.full((3, 4, 5), np.nan, np.float32))
    with pytest.raises(LatentmedError, match="all 60 voxels are NaN"):
        open_images(all_nan, nan_to="min")[0]


# --------------------------------------------------------------------------------- 3. CIFTI, unsupported images
def test_cifti_and_4d_are_one_line_errors_naming_the_file():
    cifti = Path(NIB_DATA) / "row_major.dconn.nii"
    with pytest.raises(LatentmedError) as err:
        open_images(cifti)
    assert "not a spatial image" in _one_line_naming(err.value, cifti)
    four_d = Path(NIB_DATA) / "example4d.nii.gz"
    with pytest.raises(LatentmedError, match="4D NIfTI"):
        open_images(four_d)


# --------------------------------------------------------------------------------- 4. damaged files: one line, named
def _ct_with(tmp_path, name, **fields):
    ds = pydicom.dcmread(str(CT))
    for key, value in fields.items():
        tag = pydicom.datadict.tag_for_keyword(key)
        ds[tag] = pydicom.DataElement(tag, "LO", value)
    path = tmp_path / name
    ds.save_as(str(path), enforce_file_format=False)
    return path


@pytest.mark.parametrize("field,value", [("RescaleSlope", "abc"), ("RescaleIntercept", "1e400"),
                                         ("PixelSpacing", "0.5"), ("ImagePositionPatient", "nan\\0\\0"),
                                         ("ImageOrientationPatient", "1\\0\\0\\0\\0\\0")])
def test_corrupted_dicom_numbers_name_file_and_field(tmp_path, field, value):
    path = _ct_with(tmp_path, "bad.dcm", **{field: value})
    with pytest.raises(LatentmedError) as err:
        open_images(path)[0]
    assert field in _one_line_naming(err.value, path)


def test_dicom_header_claiming_a_huge_image_is_refused_before_decoding(tmp_path):
    ds = pydicom.dcmread(str(CT))
    ds.NumberOfFrames = 200000  # 128 x 128 x 200000 values: a corrupted header, not an image to allocate
    ds.save_as(str(tmp_path / "huge.dcm"), enforce_file_format=False)
    with pytest.raises(LatentmedError, match="claims 128 x 128 pixels x 200000 frame"):
        open_images(tmp_path / "huge.dcm")


def test_corrupted_affine_and_truncated_files_are_one_line(tmp_path):
    data = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)
    bad = np.eye(4)
    bad[:3, :3] = np.nan
    path = _save_nifti(tmp_path / "aff.nii", data)
    raw = bytearray(path.read_bytes())
    hdr = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(raw[:348])))
    hdr.set_sform(bad, code=1)
    hdr.set_qform(None, code=0)
    raw[:348] = hdr.binaryblock
    path.write_bytes(bytes(raw))
    with pytest.raises(LatentmedError) as err:
        open_images(path, axis="sagittal")
    assert "orientation" in _one_line_naming(err.value, path) and "--axis 0" in str(err.value)
    assert len(open_images(path, axis=0)) == 4  # an array axis needs no orientation
    good = _save_nifti(tmp_path / "t.nii.gz", data)
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(LatentmedError) as err:
        open_images(cut)[0]
    _one_line_naming(err.value, cut)
    half = tmp_path / "half.nii"
    _save_nifti(half, data)
    half.write_bytes(half.read_bytes()[:500])
    with pytest.raises(LatentmedError, match="truncated or corrupt"):
        open_images(half)


# --------------------------------------------------------------------------------- 5. --skip-bad and DICOM folders
def test_skip_bad_nifti_folder_announces_once_and_keeps_ids_unique(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        _save_nifti(tmp_path / f"v{i}.nii.gz", rng.random((3, 4, 5)).astype(np.float32))
    (tmp_path / "v1.nii.gz").write_bytes((tmp_path / "v1.nii.gz").read_bytes()[:300])  # header fine, data cut
    with pytest.raises(LatentmedError, match="v1.nii.gz"):
        ds = open_images(tmp_path, axis=0)
        [ds[i] for i in range(len(ds))]
    notes, report = _notes()
    ds = open_images(tmp_path, axis=0, skip_bad=True, report=report)
    assert ds.ids == ["v0_0000", "v0_0001", "v0_0002", "v2_0000", "v2_0001", "v2_0002"]
    assert len({ds[i]["id"] for i in range(len(ds))}) == 6
    skipped = [n for n in notes if n.startswith("skipped")]
    assert len(skipped) == 1 and "v1.nii.gz" in skipped[0] and "\n" not in skipped[0]


def _series(folder, n=5, step=2.0, orientations=None):
    folder.mkdir(parents=True, exist_ok=True)
    base = pydicom.dcmread(str(CT))
    uid = pydicom.uid.generate_uid()
    for k in range(n):
        ds = base.copy()
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, pydicom.uid.generate_uid()
        ori = (orientations or [[1, 0, 0, 0, 1, 0]])[k % len(orientations or [0])]
        ds.ImageOrientationPatient = ori
        ds.ImagePositionPatient = [float(v) for v in step * k * np.cross(ori[:3], ori[3:])]
        ds.InstanceNumber = k + 1
        ds.save_as(str(folder / f"im{k}.dcm"), enforce_file_format=False)
    return folder


def test_dicom_series_with_unreadable_file_is_named_or_skipped_with_notice(tmp_path):
    folder = _series(tmp_path / "s")
    (folder / "im2.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)  # magic intact, the rest garbage
    with pytest.raises(LatentmedError) as err:
        open_images(folder, axis=0)
    _one_line_naming(err.value, folder / "im2.dcm")
    notes, report = _notes()
    with pytest.raises(LatentmedError, match="a gap of 4 mm between im1.dcm and im3.dcm .*--allow-gaps"):
        open_images(folder, axis=0, skip_bad=True, report=report)  # the gap the skipped file leaves: an error
    assert any(n.startswith("skipped 1 unreadable DICOM file") and "im2.dcm" in n for n in notes)
    notes.clear()
    ds = open_images(folder, axis=0, skip_bad=True, allow_gaps=True, report=report)
    assert len(ds) == 4
    assert any("uneven slice spacing" in n and "gaps allowed" in n for n in notes)  # allowed, and announced
    (folder / "im2.dcm").write_bytes(b"not dicom at all")  # no marker: a stray file, announced as ignored
    (folder / "im2.dcm").rename(folder / "im2")
    notes.clear()
    assert len(open_images(folder, axis=0, allow_gaps=True, report=report)) == 4
    assert any(n.startswith("ignored 1 file") and "im2" in n for n in notes)


def test_dicom_folder_with_several_orientations_is_split_not_stacked(tmp_path):
    axial, coronal = [1, 0, 0, 0, 1, 0], [1, 0, 0, 0, 0, -1]
    folder = _series(tmp_path / "mixed", n=6, orientations=[axial, coronal])
    notes, report = _notes()
    ds = open_images(folder, axis=0, report=report)
    names = sorted({i.rsplit("_", 1)[0] for i in ds.ids})
    assert len(ds._source.vols) == 2 and len(ds) == 6 and len(names) == 2
    assert any("2 different orientations" in n for n in notes)


# --------------------------------------------------------------------------------- 6. changes announced once
def test_resize_and_channel_changes_are_announced_once_with_counts(tmp_path):
    from PIL import Image

    folder = tmp_path / "png"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(folder / f"c{i}.png")
    Image.fromarray(np.full((16, 16), 9, np.uint8)).save(folder / "g.png")
    notes, report = _notes()
    ds = open_images(folder, size=16, report=report)
    [ds[i] for i in range(len(ds))]
    assert notes == ["converted RGB to grayscale (luma): 3 of 4 image(s)",
                     "resized 3 of 4 image(s) to 16x16 (from 20x30: 3); 3 centre-cropped to the aspect ratio"]
    notes.clear()
    open_images(folder / "g.png", size=16, channels=1, report=report)
    assert notes == []  # nothing changed, nothing said


# --------------------------------------------------------------------------------- CLI: options on every --data command
def test_cli_data_options_reach_the_reader(tmp_path):
    from latentmed.cli.main import app
    from latentmed.dae import DiffusionAutoencoder
    from latentmed.dae.presets import preset_config

    micro = dict(image_size=16, model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,),
                 z_dim=8, enc_channel_mult=(1, 2), enc_num_res_blocks=1, enc_attention_resolutions=())
    DiffusionAutoencoder(preset_config("tiny", **micro)).save_pretrained(tmp_path / "dae")
    runner = CliRunner()
    res = runner.invoke(app, ["dae", "encode", str(tmp_path / "dae"), "--data", str(CT), "--window", "bone",
                              "--out", str(tmp_path / "z.npz"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "Note: read 1 single-slice file(s) as one 2D image each" in res.output
    assert "Note: resized 1 of 1 image(s) to 16x16 (from 128x128: 1)" in res.output
    assert list(np.load(tmp_path / "z.npz")["ids"]) == ["CT_small"]
    nan = _save_nifti(tmp_path / "nan.nii.gz", np.where(np.eye(16)[:, :, None] > 0, np.nan, 1.0).repeat(3, 2))
    res = runner.invoke(app, ["dae", "encode", str(tmp_path / "dae"), "--data", str(nan), "--axis", "2",
                              "--out", str(tmp_path / "n.npz"), "--device", "cpu"])
    assert res.exit_code == 2 and str(nan) in res.output and "--nan-to" in res.output
    res = runner.invoke(app, ["dae", "encode", str(tmp_path / "dae"), "--data", str(nan), "--axis", "2",
                              "--slices", "0:2", "--nan-to", "0", "--out", str(tmp_path / "n.npz"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert list(np.load(tmp_path / "n.npz")["ids"]) == ["nan_0000", "nan_0001"]
    for cmd in (["dae", "train"], ["dae", "reconstruct"], ["dae", "interpolate"], ["evaluate", "recon"],
                ["evaluate", "generation"], ["evaluate", "ppl"], ["counterfactual", "make"], ["grade", "evaluate"]):
        text = runner.invoke(app, cmd + ["--help"]).output
        assert all(opt in text for opt in ("--axis", "--window", "--slices", "--nan-to", "--skip-bad")), cmd


def test_ldm_reader_reads_a_volume_through_the_shared_reader(tmp_path):
    """The latent diffusion reader is the data layer's: a DICOM slice opens, scaled by its own min-max."""
    from latentmed.ldm.data import open_ldm_images

    x = open_ldm_images(CT, size=None).stack()
    assert x.shape == (1, 1, 128, 128) and x.min() == -1 and x.max() == 1
    (tmp_path / "bad.tar").write_bytes(b"not a tar file")
    with pytest.raises(LatentmedError) as err:
        open_ldm_images(tmp_path / "bad.tar")
    assert "not a readable tar shard" in _one_line_naming(err.value, tmp_path / "bad.tar")
