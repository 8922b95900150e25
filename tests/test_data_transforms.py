"""Transforms: value scaling, resize + centre crop, channels, the RetinaMNIST augmentation (MONAI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentmed.data.transforms import (center_crop, crop_at, resize_center_crop, retinamnist_augment, to_channels,
                                       to_unit_range)
from latentmed.errors import LatentmedError


def test_to_unit_range_by_dtype_and_explicit_range():
    assert to_unit_range(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    assert to_unit_range(np.array([0, 65535], np.uint16)).tolist() == [0.0, 1.0]
    assert to_unit_range(np.array([-1.0, 1.0], np.float32)).tolist() == [0.0, 1.0]
    np.testing.assert_allclose(to_unit_range(np.array([-1000.0, 0.0, 1000.0]), (-500, 500)), [0, 0.5, 1])
    np.testing.assert_allclose(to_unit_range(np.array([3.0, 5.0, 7.0])), [0, 0.5, 1])  # min-max fallback
    with pytest.raises(LatentmedError, match="high > low"):
        to_unit_range(np.zeros(3), (1, 1))


def test_resize_center_crop_keeps_aspect_and_crops_centre():
    x = torch.linspace(-1, 1, 20 * 40).reshape(1, 20, 40)
    y = resize_center_crop(x, 10)
    assert y.shape == (1, 10, 10)
    # downscale by 2 keeps the middle columns: the centre of y equals the centre of x (linear ramp)
    assert abs(float(y.mean()) - float(x[:, :, 10:30].mean())) < 0.02
    assert center_crop(x, (4, 6)).shape == (1, 4, 6)
    padded = crop_at(np.zeros((5, 5), np.float32), (0, 0), 3, fill=-1.0)
    assert padded[0, 0] == -1 and padded[1, 1] == 0


def test_channels():
    rgb = torch.rand(3, 4, 4)
    gray = to_channels(rgb, 1)
    torch.testing.assert_close(gray[0], 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])
    assert to_channels(gray, 3).shape == (3, 4, 4)
    assert to_channels(torch.rand(4, 4, 4), 3).shape == (3, 4, 4)  # alpha dropped
    with pytest.raises(LatentmedError, match="channels must be 1"):
        to_channels(rgb, 2)


def test_retinamnist_augment_shapes_range_and_randomness():
    x = torch.linspace(-1, 1, 32 * 32).reshape(1, 32, 32).repeat(3, 1, 1)
    identity = retinamnist_augment(prob=0.0, seed=0)
    torch.testing.assert_close(identity(x), x)
    aug = retinamnist_augment(prob=1.0, seed=0)
    outs = [aug(x) for _ in range(3)]
    for out in outs:
        assert out.shape == x.shape and out.dtype == torch.float32 and out.min() >= -1 and out.max() <= 1
        assert not torch.allclose(out, x, atol=1e-3)
    assert not torch.allclose(outs[0], outs[1])
    # zoom stays in 90-110 %, rotation within 30 degrees: the mean is roughly preserved
    assert all(abs(float(o.mean()) - float(x.mean())) < 0.35 for o in outs)
