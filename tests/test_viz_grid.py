"""Image grids: layout, value mapping, enlargement of small tiles, atomic PNG output."""

import numpy as np
import torch
from PIL import Image

from latentmed.viz import image_grid, save_image_grid, to_uint8


def test_to_uint8_maps_range_and_clips():
    x = torch.tensor([[[[-1.0, 0.0, 1.0, 2.0]]]])
    assert to_uint8(x)[0, 0, :, 0].tolist() == [0, 128, 255, 255]


def test_grid_layout_and_small_tiles_enlarged():
    x = torch.linspace(-1, 1, 5).view(5, 1, 1, 1).expand(5, 1, 32, 32)
    g = image_grid(x, nrow=3, pad=2)
    assert g.shape == (2 * (96 + 2) + 2, 3 * (96 + 2) + 2, 1)  # 32 px tiles enlarged x3
    assert g[2, 2, 0] == 0 and g[2, 2 + 98, 0] == 64  # first two tiles keep their values
    assert image_grid(x, nrow=3, min_tile=1).shape == (2 * 34 + 2, 3 * 34 + 2, 1)


def test_save_grid_writes_png_and_no_temp(tmp_path):
    path = save_image_grid(torch.zeros(2, 3, 8, 8), tmp_path / "g.png", min_tile=1)
    assert np.asarray(Image.open(path)).shape == (12, 22, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]
