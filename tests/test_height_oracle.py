"""The height oracle: heights of drawn bodies of known size, grades of rendered phantoms, clear errors."""

import numpy as np
import pytest

from latentmed.errors import LatentmedError
from latentmed.evaluation.height_oracle import (UNREADABLE, genant_from_loss, measure_heights, oracle_grade,
                                                oracle_measure)


def drawn_spine(size=128, centre_height=30.0, neighbour_height=30.0, disc=8.0, depth=40.0, rim=1.5, top_loss=0.0):
    """A noiseless sagittal column drawn here (not by the phantom): three bodies (interior 0.5, rim 0.88),
    discs 0.4, a dark canal behind, soft tissue 0.3 in front; the centre body's top lowered by
    ``top_loss`` of its height over the anterior half (a wedge). Heights in pixels; cranial up."""
    ss = 4
    n = size * ss
    yy, xx = np.mgrid[0:n, 0:n] / ss  # pixel units
    c = size / 2
    img = np.full((n, n), 0.3)
    x0, x1 = c - depth / 2, c + depth / 2  # anterior is left (small x)
    img[(xx >= x1 + 1) & (xx < x1 + 14)] = 0.12
    img[(xx >= x0) & (xx < x1)] = 0.4
    bottom = c + centre_height / 2  # y grows caudally
    top_full = c - centre_height / 2
    anterior = xx < c
    top = np.where(anterior, top_full + top_loss * centre_height * (c - xx) / (depth / 2), top_full)
    seg = neighbour_height + disc
    bodies = [(top, bottom), (top_full - seg, top_full - disc), (bottom + disc, bottom + seg),
              (top_full - 2 * seg, top_full - seg - disc), (bottom + seg + disc, bottom + 2 * seg)]
    for t, b in bodies:
        inside = (xx >= x0) & (xx < x1) & (yy >= t) & (yy < b)
        img[inside] = 0.5
        near = inside & ((yy < t + rim) | (yy >= b - rim) | (xx < x0 + rim) | (xx >= x1 - rim))
        img[near] = 0.88
    return img.reshape(size, ss, size, ss).mean(axis=(1, 3))


def test_heights_of_a_drawn_column_are_measured_to_half_a_pixel():
    m = measure_heights(drawn_spine(), value_range=(0, 1))
    assert abs(m.angle_deg) <= 1.0
    for h in (m.anterior, m.middle, m.posterior):
        assert abs(h - 30.0) < 0.5
    assert abs(m.reference - 30.0) < 0.5 and m.grade == 0
    # a wedge: the anterior line (0.8 of the half depth) loses 0.8 * 40% of the height = 32% -> G2
    w = measure_heights(drawn_spine(top_loss=0.4), value_range=(0, 1))
    assert abs(w.posterior - 30.0) < 0.5 and abs(w.anterior - 30.0 * (1 - 0.32)) < 1.0
    assert abs(w.height_loss - 0.32) < 0.03 and w.grade == 2
    # the reference is the neighbours' height, not the body's own: a small centre body reads as collapsed
    s = measure_heights(drawn_spine(centre_height=15.0, neighbour_height=30.0), value_range=(0, 1))
    assert abs(s.height_loss - 0.5) < 0.04 and s.grade == 3


def test_value_range_and_layouts():
    img = drawn_spine(top_loss=0.4)
    a = measure_heights(img, value_range=(0, 1))
    b = oracle_measure((img * 2 - 1)[None, None])[0]  # the package's [-1, 1] images, [N, 1, H, W]
    assert a.grade == b.grade and abs(a.height_loss - b.height_loss) < 1e-9
    assert oracle_grade(np.stack([img, img])[:, None] * 2 - 1).tolist() == [2, 2]


def test_rendered_phantoms_are_graded_from_the_image():
    """G0 and G3 phantoms (centred, all levels, a seed the demo never uses) at 64 px."""
    from latentmed.data.phantoms.spine2d import render_spine2d

    grades = {0: [], 3: []}
    for i in range(8):
        for g, q in ((0, 0.05), (3, 0.5)):
            img, info = render_spine2d(q, ["T5", "T9", "T12", "L2"][i % 4], 64, rng=10_000 + i)
            assert info["genant"] == g
            grades[g].append(int(oracle_grade(img[None], value_range=(0, 1))[0]))
    assert sum(x <= 1 for x in grades[0]) >= 7, grades  # G0 read as healthy (G0/G1)
    assert sum(x >= 2 for x in grades[3]) >= 7, grades  # G3 read as fractured (G2/G3)
    assert np.mean(np.array(grades[3]) > np.array(grades[0])) >= 0.9


def test_bad_images_give_clear_errors_or_unreadable():
    with pytest.raises(LatentmedError, match="square grayscale image"):
        measure_heights(np.zeros((8, 8)))
    with pytest.raises(LatentmedError, match="value_range"):
        measure_heights(np.zeros((32, 32)), value_range=(1, 0))
    with pytest.raises(LatentmedError, match="1 channel"):
        oracle_grade(np.zeros((2, 3, 32, 32)))
    flat = np.zeros((2, 1, 32, 32))
    with pytest.raises(LatentmedError):
        measure_heights(flat[0])
    assert oracle_grade(flat).tolist() == [UNREADABLE, UNREADABLE]  # a blank image is no vertebra


def test_genant_thresholds_follow_the_phantom():
    assert genant_from_loss([0.0, 0.199, 0.2, 0.249, 0.25, 0.4, 0.401, 1.3]).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
