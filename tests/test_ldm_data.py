"""The latent diffusion data path through the shared reader: folders, tar shards, per-image scaling, labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from latentmed.data import open_images, to_unit_range, write_shards
from latentmed.data.phantoms.chest2d import generate_chest2d
from latentmed.data.transforms import resize_center_crop
from latentmed.errors import LatentmedError
from latentmed.ldm.data import augment, folder_labels, open_ldm_images


def test_folder_and_shards_give_the_same_samples(tmp_path):
    generate_chest2d(tmp_path / "d", n=7, size=32, seed=0)
    paths = write_shards(tmp_path / "d", tmp_path / "s", shard_size=3)
    assert [p.name for p in paths] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    folder, shards = open_ldm_images(tmp_path / "d", size=32), open_ldm_images(tmp_path / "s", size=32)
    assert len(folder) == len(shards) == 7
    assert folder.ids == shards.ids == [f"chest_{i:04d}" for i in range(7)]  # the manifest's ids, both ways
    torch.testing.assert_close(folder.stack(), shards.stack())
    assert shards.labels.loc["chest_0004", "cardiomegaly"] == folder.labels.loc["chest_0004", "cardiomegaly"]
    x = folder[0]["image"]
    assert x.shape == (1, 32, 32) and x.min() >= -1 and x.max() <= 1
    # the manifest lists images only: the masks/ beside them are not read as images
    assert len(open_images(tmp_path / "d")) == 7


def test_per_image_scaling_16bit_crop_resize_and_augment(tmp_path):
    arr16 = (np.arange(60 * 40, dtype=np.uint16).reshape(60, 40) * 20)
    unit = to_unit_range(arr16, "image")  # DiNO-Diffusion: 16-bit rescaled by the image's own min-max
    assert unit.min() == 0 and unit.max() == 1
    assert np.array_equal(to_unit_range(np.array([[3, 200]], np.uint8), "image"), to_unit_range(np.array([[3, 200]],
                                                                                                       np.uint8)))
    x = resize_center_crop(torch.from_numpy(unit[None]) * 2 - 1, 16)
    assert x.shape == (1, 16, 16)
    # the centre crop of a vertical ramp keeps the middle rows: mean ~ the middle grey
    assert abs(x.mean().item()) < 0.05
    d = tmp_path / "sixteen"
    d.mkdir()
    Image.fromarray(arr16[:40] // 8 + 1000).save(d / "a.png")  # a dim 16-bit image: at most 5000 of 65535
    read = open_ldm_images(d, size=None).stack()  # per-image scaling: the dim 16-bit image spans [-1, 1]
    assert read.min() == -1 and read.max() == 1
    assert open_images(d).stack().max() < -0.8  # the dtype rule keeps it dark
    img = torch.linspace(-1, 1, 32).repeat(1, 32, 1)
    out = augment(img, 0)
    assert out.shape == img.shape and out.abs().max() <= 1 + 1e-6 and not torch.equal(out, img)
    torch.testing.assert_close(out, augment(img, 0))  # seeded
    assert not torch.equal(out, augment(img, 1))
    # each part does what it says: zoom 2 magnifies (a centred square grows), sharpening steepens an edge
    sq = -torch.ones(1, 32, 32)
    sq[:, 12:20, 12:20] = 1
    big = augment(sq, 0, shear=0, translate=0, scale=(2.0, 2.0), sharpen=0)
    assert (big > 0).sum() > 3 * (sq > 0).sum()
    step = torch.zeros(1, 32, 32)
    step[..., 16:] = 0.5
    sharp = augment(step, 0, shear=0, translate=0, scale=(1.0, 1.0), sharpen=1.0)
    assert sharp[0, 16, 15] < 0 and sharp[0, 16, 16] > 0.5  # over/undershoot at the edge


def test_bad_inputs(tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(d / "a.png")
    Image.fromarray(np.zeros((24, 20), np.uint8)).save(d / "b.png")
    with pytest.raises(LatentmedError, match="different sizes"):
        open_ldm_images(d, size=None)
    assert open_ldm_images(d, size=16).stack().shape == (2, 1, 16, 16)  # with a size they are all cropped/resized
    root = generate_chest2d(tmp_path / "c", n=2, size=32)
    ids = ["chest_0000", "chest_0001"]
    assert folder_labels(root, ids, ["cardiomegaly", "effusion"]).shape == (2, 2)
    with pytest.raises(LatentmedError, match="no column.*'pneumonia'.*cardiomegaly"):
        folder_labels(root, ids, ["cardiomegaly", "pneumonia"])
    with pytest.raises(LatentmedError, match="0/1 labels"):
        folder_labels(root, ids, ["ctr"])
    with pytest.raises(LatentmedError, match="embedding cache has 3 rows"):
        open_ldm_images(root, size=32, tokens=torch.zeros(3, 1, 4))
    (tmp_path / "empty").mkdir()
    with pytest.raises(LatentmedError, match="no images found"):
        open_ldm_images(tmp_path / "empty")
