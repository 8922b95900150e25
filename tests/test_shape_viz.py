import numpy as np

from latentmed.shape.evaluate import EvaluationResult, latent_variance_trace, score_cases
from latentmed.shape.models import LSDEBM, LSDEBMConfig
from latentmed.viz.shape import difference_rgb, mid_slices


def test_difference_colours_and_mid_slices():
    truth = np.array([[1, 1], [0, 0]], bool)
    pred = np.array([[1, 0], [1, 0]], bool)
    rgb = difference_rgb(truth, pred)
    assert tuple(rgb[0, 0]) == (255, 255, 255)  # TP
    assert rgb[1, 0, 0] > 200 and rgb[1, 0, 2] < 100  # FP red
    assert rgb[0, 1, 2] > 200 and rgb[0, 1, 0] < 100  # FN blue
    assert tuple(rgb[1, 1]) == (0, 0, 0)
    vol = np.arange(27).reshape(3, 3, 3)
    a, c, s = mid_slices(vol)
    assert np.array_equal(a, vol[1]) and np.array_equal(c, vol[:, 1]) and np.array_equal(s, vol[:, :, 1])


def test_latent_variance_trace_and_table():
    model = LSDEBM(LSDEBMConfig(image_size=16, latent_dim=4, base_channels=4, max_channels=8, energy_hidden=8,
                                energy_layers=2, time_dim=4, num_steps=3, langevin_steps=2)).eval()
    coarse = np.random.default_rng(0).random((5, 16, 16, 16)) > 0.6
    trace = latent_variance_trace(model, coarse, steps=3, batch_size=2)
    assert [t for t, _ in trace] == [3, 2, 1, 0] and all(v > 0 for _, v in trace)
    truth = coarse.copy()
    truth[:, :2] = False
    res = EvaluationResult(names=[f"c{i}" for i in range(5)])
    res.scores["input"] = score_cases(truth, coarse)
    assert np.all(res.scores["input"]["sensitivity"] == 1.0)  # (truth, pred): nothing of the truth is missed
    assert np.all(res.scores["input"]["dice"] < 1.0)
    table = res.table()
    assert table.splitlines()[0].startswith("| Method | Dice | VS | SEN | SPEC | NMI | Kappa")
    assert "| input | " in table and "±" in table
    mean, std = res.summary()["input"]["dice"]
    assert mean == np.mean(res.scores["input"]["dice"]) and std == np.std(res.scores["input"]["dice"])


def test_part_colours_mark_hits_misses_and_false_positives(tmp_path):
    from latentmed.viz.shape import MISSED_BRIGHTNESS, PART_COLOURS, parts_rgb, save_refinement_figure

    parts = np.array([[1, 3], [0, 0]], np.uint8)
    pred = np.array([[1, 0], [1, 0]], bool)
    rgb = parts_rgb(parts, pred)
    assert tuple(rgb[0, 0]) == tuple(PART_COLOURS[1])  # body found: its colour
    assert tuple(rgb[0, 1]) == tuple((PART_COLOURS[3] * MISSED_BRIGHTNESS).astype(np.uint8))  # lamina missed: dark
    assert tuple(rgb[1, 0]) == (230, 40, 40) and tuple(rgb[1, 1]) == (0, 0, 0)  # FP red, TN black
    assert np.array_equal(parts_rgb(parts)[0, 1], PART_COLOURS[3])  # truth row: plain part colours
    vol_parts = np.zeros((8, 8, 8), np.uint8)
    vol_parts[2:6, 2:6, 2:6] = 1
    vol_parts[3:5, 6:8, 3:5] = 3
    truth = vol_parts > 0
    path = save_refinement_figure(truth, {"input": truth & (vol_parts == 1)}, tmp_path / "f.png", parts=vol_parts,
                                  part_names={1: "body", 3: "lamina"})
    assert path.is_file() and path.stat().st_size > 1000
    import pytest

    from latentmed.errors import LatentmedError

    with pytest.raises(LatentmedError, match="parts: expected"):
        save_refinement_figure(truth, {}, tmp_path / "g.png", parts=vol_parts[:4])
