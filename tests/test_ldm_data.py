"""Folders, tar shards, preprocessing and labels CSVs for the latent diffusion data path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from latentmed.data.phantoms.chest2d import generate_chest2d
from latentmed.errors import LatentmedError
from latentmed.ldm.data import (LDMImageDataset, augment, center_crop_square, preprocess, read_labels_csv, to_8bit,
                                write_shards)


def test_folder_and_shards_give_the_same_samples(tmp_path):
    generate_chest2d(tmp_path / "d", n=7, size=32, seed=0)
    paths = write_shards(tmp_path / "d", tmp_path / "s", shard_size=3)
    assert [p.name for p in paths] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    folder, shards = LDMImageDataset(tmp_path / "d", size=32), LDMImageDataset(tmp_path / "s", size=32)
    assert shards.is_shards and not folder.is_shards and len(folder) == len(shards) == 7
    assert folder.keys == shards.keys
    torch.testing.assert_close(folder.stack(), shards.stack())
    assert shards.row(4)["cardiomegaly"] == folder.row(4)["cardiomegaly"]
    x = folder[0]["image"]
    assert x.shape == (1, 32, 32) and x.min() >= -1 and x.max() <= 1


def test_preprocessing_16bit_crop_resize_and_augment():
    arr16 = (np.arange(60 * 40, dtype=np.uint16).reshape(60, 40) * 20)
    a8 = to_8bit(arr16)
    assert a8.dtype == np.uint8 and a8.min() == 0 and a8.max() == 255
    assert center_crop_square(np.zeros((60, 40))).shape == (40, 40)
    x = preprocess(a8, 16)
    assert x.shape == (1, 16, 16)
    # the centre crop of a vertical ramp keeps the middle rows: mean ~ the middle grey
    assert abs(x.mean().item()) < 0.05
    img = preprocess(np.tile(np.linspace(0, 255, 32).astype(np.uint8), (32, 1)), 32)
    out = augment(img, torch.Generator().manual_seed(0))
    assert out.shape == img.shape and out.abs().max() <= 1 + 1e-6 and not torch.equal(out, img)
    same = augment(img, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, same)


def test_bad_inputs(tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(d / "a.png")
    Image.fromarray(np.zeros((24, 20), np.uint8)).save(d / "b.png")
    ds = LDMImageDataset(d, size=None)
    with pytest.raises(LatentmedError, match="mixed sizes"):
        ds.stack()
    assert LDMImageDataset(d, size=16).stack().shape == (2, 1, 16, 16)  # with a size they are all cropped/resized
    csv_path = generate_chest2d(tmp_path / "c", n=2, size=32)
    with pytest.raises(LatentmedError, match="no column.*'pneumonia'.*cardiomegaly"):
        read_labels_csv(csv_path, ["cardiomegaly", "pneumonia"])
    with pytest.raises(LatentmedError, match="0/1 labels"):
        read_labels_csv(csv_path, ["ctr"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(LatentmedError, match="no images found"):
        LDMImageDataset(tmp_path / "empty")
