"""Readers of latentmed.data on files the tests write: PNG folders, NPZ (MedMNIST), NIfTI, DICOM, labels."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from latentmed.data import open_images, read_labels
from latentmed.errors import LatentmedError


def _write_pngs(folder, n=5, size=(16, 12), rgb=False, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i in range(n):
        shape = (*size, 3) if rgb else size
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(a).save(folder / f"img{i}.png")
        arrays[f"img{i}"] = a
    return arrays


def test_png_folder_values_ids_and_lazy_reading(tmp_path):
    arrays = _write_pngs(tmp_path / "png")
    ds = open_images(tmp_path / "png")
    assert len(ds) == 5 and ds.ids == [f"img{i}" for i in range(5)]
    assert ds.image_size == (16, 12) and ds.channels == 1
    item = ds[2]
    assert item["id"] == "img2" and item["image"].dtype == torch.float32
    expected = torch.from_numpy(arrays["img2"].astype(np.float32) / 255 * 2 - 1)[None]
    torch.testing.assert_close(item["image"], expected)
    # resize + centre crop, grayscale -> RGB
    ds3 = open_images(tmp_path / "png", size=8, channels=3)
    assert ds3[0]["image"].shape == (3, 8, 8) and ds3.image_size == 8
    assert torch.equal(ds3[0]["image"][0], ds3[0]["image"][2])


def test_rgb_to_gray_uses_luma(tmp_path):
    arrays = _write_pngs(tmp_path / "rgb", n=2, rgb=True)
    x = open_images(tmp_path / "rgb")[0]["image"]
    a = arrays["img0"].astype(np.float32) / 255
    luma = a @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    np.testing.assert_allclose(x[0].numpy(), luma * 2 - 1, atol=1e-5)


def test_bad_inputs_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LatentmedError, match="no images found"):
        open_images(tmp_path / "empty")
    with pytest.raises(LatentmedError, match="no such file"):
        open_images(tmp_path / "missing")
    _write_pngs(tmp_path / "mixed", n=2, size=(16, 16))
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "mixed" / "other.png")
    with pytest.raises(LatentmedError, match="different sizes.*--size"):
        open_images(tmp_path / "mixed")
    assert open_images(tmp_path / "mixed", size=16)[2]["image"].shape == (1, 16, 16)


def test_corrupt_file_named_or_skipped(tmp_path):
    _write_pngs(tmp_path / "png", n=3)
    (tmp_path / "png" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(LatentmedError, match="broken.png.*skip"):
        open_images(tmp_path / "png")
    with pytest.warns(UserWarning, match="broken.png"):
        ds = open_images(tmp_path / "png", skip_bad=True)
    assert len(ds) == 3 and "broken" not in ds.ids


def test_cache_matches_lazy_reads_and_refuses_other_settings(tmp_path):
    _write_pngs(tmp_path / "png", n=4)
    lazy = open_images(tmp_path / "png")
    cached = open_images(tmp_path / "png", cache=tmp_path / "cache.npy")
    assert cached._cache is not None and cached._cache.dtype == np.uint8
    for i in range(4):
        assert torch.equal(lazy[i]["image"], cached[i]["image"])
    again = open_images(tmp_path / "png", cache=tmp_path / "cache.npy")  # reuses the file
    assert torch.equal(again[3]["image"], lazy[3]["image"])
    with pytest.raises(LatentmedError, match="built for other data or settings"):
        open_images(tmp_path / "png", size=8, cache=tmp_path / "cache.npy")


def test_npz_medmnist_layout_and_npy(tmp_path):
    rng = np.random.default_rng(0)
    splits = {"train": 6, "val": 3, "test": 2}
    arrays = {}
    for s, n in splits.items():
        arrays[f"{s}_images"] = rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{s}_labels"] = rng.integers(0, 5, (n, 1))
    np.savez(tmp_path / "retinamnist.npz", **arrays)
    ds = open_images(tmp_path / "retinamnist.npz", split="val", channels=3)
    assert len(ds) == 3 and ds.ids[0] == "val_00000" and ds.image_size == 28
    item = ds[1]
    expected = torch.from_numpy(arrays["val_images"][1].astype(np.float32) / 255 * 2 - 1).permute(2, 0, 1)
    torch.testing.assert_close(item["image"], expected)
    assert float(item["labels"]["label"]) == float(arrays["val_labels"][1, 0])
    assert len(open_images(tmp_path / "retinamnist.npz")) == 6  # default split: train
    with pytest.raises(LatentmedError, match="available splits"):
        open_images(tmp_path / "retinamnist.npz", split="holdout")
    np.save(tmp_path / "x.npy", rng.random((4, 10, 10)).astype(np.float32))
    ds = open_images(tmp_path / "x.npy")
    assert len(ds) == 4 and ds[0]["image"].shape == (1, 10, 10) and ds[0]["image"].min() >= -1


def test_labels_csv_binary_ordinal_missing_and_mismatch(tmp_path):
    _write_pngs(tmp_path / "png", n=5)
    csv = tmp_path / "labels.csv"
    csv.write_text("id,fracture,genant,level\nimg0,0,0,L1\nimg1.png,1,3,T12\nimg2,,2,L2\n")
    ds = open_images(tmp_path / "png", labels=csv)
    assert float(ds[1]["labels"]["genant"]) == 3.0 and float(ds[1]["labels"]["fracture"]) == 1.0
    assert torch.isnan(ds[2]["labels"]["fracture"]) and torch.isnan(ds[4]["labels"]["genant"])  # unlabelled
    assert "level" not in ds[0]["labels"] and ds.labels.loc["img1", "level"] == "T12"
    df = read_labels(csv, columns=["genant"])
    assert list(df.columns) == ["genant"] and df.loc["img1.png", "genant"] == 3
    bad = tmp_path / "bad.csv"
    bad.write_text("id,y\n" + "".join(f"scan_{i},1\n" for i in range(7)) + "img0,0\n")
    with pytest.raises(LatentmedError, match=r"7 of 8 label ids do not match.*scan_0"):
        open_images(tmp_path / "png", labels=bad)
    (tmp_path / "noid.csv").write_text("name,y\na,1\n")
    with pytest.raises(LatentmedError, match="no 'id' column"):
        read_labels(tmp_path / "noid.csv")


# ----------------------------------------------------------------------------------------- NIfTI

def _nifti(tmp_path, shape=(6, 7, 8)):
    import nibabel as nib

    rng = np.random.default_rng(1)
    data = rng.integers(-1000, 2000, shape).astype(np.int16)
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 1.0, 1.0])), str(path))  # RAS, 1 mm
    return data.astype(np.float32), path


def _windowed(a):  # window centre 500, width 3000 -> [-1000, 2000] maps to [-1, 1]
    return (a + 1000.0) / 3000.0 * 2 - 1


def test_nifti_slices_along_axes_and_views(tmp_path):
    data, path = _nifti(tmp_path)
    ds = open_images(path, axis=2, window=(500, 3000))
    assert len(ds) == 8 and ds.ids[3] == "ct_0003"
    np.testing.assert_allclose(ds[3]["image"][0].numpy(), _windowed(data[:, :, 3]), atol=1e-5)
    # sagittal view of an RAS volume: slice k along x, rows from superior to inferior, columns anterior -> posterior
    sag = open_images(path, axis="sagittal", window=(500, 3000))
    assert len(sag) == 6 and sag.image_size == (8, 7)
    np.testing.assert_allclose(sag[2]["image"][0].numpy(), _windowed(data[2, ::-1, ::-1].T), atol=1e-5)
    assert len(open_images(path, axis=1, slices=[0, 6])) == 2
    with pytest.raises(LatentmedError, match="slice 9 is out of range.*0..7"):
        open_images(path, axis=2, slices=[9])
    # bone window preset clips: everything above 1300 HU is white
    bone = open_images(path, axis=2, window="bone")[0]["image"]
    assert bone.max() <= 1 and bool(((torch.from_numpy(data[:, :, 0]) > 1300) == (bone[0] >= 1)).all())


def test_nifti_verse_centroid_slice_and_crop(tmp_path):
    data, path = _nifti(tmp_path, shape=(9, 11, 13))
    x, y, z = 4, 6, 5
    data_marked = data.copy()
    data_marked[x, y, z] = 3000
    import nibabel as nib

    nib.save(nib.Nifti1Image(data_marked.astype(np.int16), np.eye(4)), str(path))
    # VerSe JSON: voxel coordinates in the orientation named by "direction" (here P, I, R)
    ctd = [{"direction": ["P", "I", "R"]}, {"label": 20, "X": 11 - 1 - y, "Y": 13 - 1 - z, "Z": x}]
    (tmp_path / "ctd.json").write_text(json.dumps(ctd))
    ds = open_images(path, axis="sagittal", centroids=tmp_path / "ctd.json", window=(500, 3000), crop=5)
    assert ds.ids == ["ct_L1"] and ds.image_size == 5
    img = ds[0]["image"][0]
    assert float(img[2, 2]) == 1.0 and float(img.max()) == 1.0  # the marked voxel sits at the crop centre
    np.testing.assert_allclose(img[1, 2].item(), _windowed(data[x, y, z + 1]), atol=1e-5)  # one row up = superior
    bad = [{"label": 1, "X": 40, "Y": 2, "Z": 2}]
    with pytest.raises(LatentmedError, match="centroid C1 .* outside"):
        open_images(path, axis=0, centroids=bad)


# ----------------------------------------------------------------------------------------- DICOM

def _write_dicom_series(folder, n=4, rows=8, cols=10):
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    hu = rng.integers(-1000, 2000, (n, rows, cols)).astype(np.int16)
    series = generate_uid()
    for k in rng.permutation(n):  # file order differs from slice order
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"f{k}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series, generate_uid()
        ds.InstanceNumber = int(n - k)  # deliberately misleading: geometry decides the order
        ds.ImagePositionPatient = [0.0, 0.0, float(2 * k)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [0.5, 0.5], 2.0
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = (hu[k].astype(np.int32) + 1024).astype(np.uint16).tobytes()
        ds.save_as(str(folder / f"f{k}.dcm"), enforce_file_format=True)
    assert pydicom.dcmread(str(folder / "f0.dcm")).pixel_array.shape == (rows, cols)
    return hu.astype(np.float32)


def test_dicom_series_sorted_by_position_in_hu(tmp_path):
    hu = _write_dicom_series(tmp_path / "series")
    ds = open_images(tmp_path / "series", axis=0, window=(500, 3000))
    assert len(ds) == 4 and ds.image_size == (8, 10)
    for k in range(4):
        np.testing.assert_allclose(ds[k]["image"][0].numpy(), _windowed(hu[k]), atol=1e-5)
    axial = open_images(tmp_path / "series", axis="axial", window=(500, 3000))  # LPS rows/cols = axial view
    assert torch.equal(axial[1]["image"], ds[1]["image"])
    single = open_images(tmp_path / "series" / "f2.dcm", window=(500, 3000), axis=0)
    np.testing.assert_allclose(single[0]["image"][0].numpy(), _windowed(hu[2]), atol=1e-5)


def test_truncated_png_named_on_access_or_skipped(tmp_path):
    _write_pngs(tmp_path / "png", n=2, size=(32, 32))
    good = (tmp_path / "png" / "img1.png").read_bytes()
    (tmp_path / "png" / "img2.png").write_bytes(good[: len(good) // 2])  # header fine, data cut
    ds = open_images(tmp_path / "png")  # opening reads headers only
    with pytest.raises(LatentmedError, match="img2.png: cannot read image"):
        ds[2]
    with pytest.warns(UserWarning, match="img2.png"):
        assert open_images(tmp_path / "png", skip_bad=True).ids == ["img0", "img1"]


def test_16bit_tiff_subset_and_dataloader(tmp_path):
    from torch.utils.data import DataLoader

    folder = tmp_path / "tif"
    folder.mkdir()
    a = (np.arange(12 * 12, dtype=np.uint16).reshape(12, 12) * 400).astype(np.uint16)
    for i in range(3):
        Image.fromarray(a + i).save(folder / f"t{i}.tif")
    ds = open_images(folder, value_range=(0, 65535))
    np.testing.assert_allclose(ds[0]["image"][0].numpy(), a / 65535 * 2 - 1, atol=1e-6)
    assert ds._source.eight_bit is False
    (tmp_path / "y.csv").write_text("id,y\nt0,0\nt1,1\nt2,1\n")
    ds.attach_labels(tmp_path / "y.csv")
    sub = ds.subset(["t2", "t0"])
    assert sub.ids == ["t2", "t0"] and float(sub[0]["labels"]["y"]) == 1.0
    batch = next(iter(DataLoader(sub, batch_size=2)))
    assert batch["image"].shape == (2, 1, 12, 12) and batch["id"] == ["t2", "t0"]
    assert batch["labels"]["y"].tolist() == [1.0, 0.0]
