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


def test_row_labels_and_spinal_level_order(tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from latentmed.errors import LatentmedError
    from latentmed.viz.grid import image_grid, save_image_grid
    from latentmed.viz.latent import spinal_order

    x = torch.zeros(6, 1, 32, 32)
    plain = image_grid(x, nrow=3)
    path = save_image_grid(x, tmp_path / "g.png", nrow=3, row_labels=["input", "x_T inverted"])
    labelled = np.asarray(Image.open(path))
    assert labelled.shape[0] == plain.shape[0] and labelled.shape[1] > plain.shape[1]  # a left margin
    assert (labelled[:, : labelled.shape[1] - plain.shape[1]] < 128).any()  # with text in it
    try:
        save_image_grid(x, tmp_path / "bad.png", nrow=3, row_labels=["one"])
        raise AssertionError("expected an error")
    except LatentmedError as exc:
        assert "1 labels for 2 rows" in str(exc)
    assert spinal_order(["L1", "T10", "T4", "L4", "T12", "C7"]) == ["C7", "T4", "T10", "T12", "L1", "L4"]
    assert spinal_order(["G0", "L1"]) is None


def test_save_figure_writes_atomically_closes_and_reads_the_suffix(tmp_path):
    from latentmed.viz import pyplot, save_figure
    from latentmed.viz.latent import save_calibration

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    save_figure(fig, tmp_path / "f.svg")
    assert (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")  # format from the suffix
    assert not plt.fignum_exists(fig.number)  # closed
    fig, _ = plt.subplots()
    save_figure(fig, tmp_path / "f.plot", dpi=50)  # no known format in the suffix: PNG
    assert Image.open(tmp_path / "f.plot").format == "PNG"
    # calibration plot from plain values: curves are callables, no grader needed
    save_calibration([-1.0, 0.0, 2.0], [0, 1, 3], {"linear": lambda d: d + 1.0}, tmp_path / "cal.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.png", "f.plot", "f.svg"]
