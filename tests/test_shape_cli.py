import json

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from latentmed.cli import shape as shape_cli
from latentmed.data.phantoms.spine3d import generate_spine3d
from latentmed.metrics.segmentation import segmentation_scores
from latentmed.shape.evaluate import load_pairs

runner = CliRunner()
TINY = ["--set", "model.latent_dim=6", "--set", "model.base_channels=4", "--set", "model.max_channels=8",
        "--set", "model.energy_hidden=16", "--set", "model.energy_layers=2", "--set", "model.time_dim=8",
        "--set", "model.num_steps=3", "--set", "model.langevin_steps=2", "--set", "train.steps=2",
        "--set", "train.batch_size=2", "--set", "train.progress=false", "--set", "train.checkpoint_every=0"]


def _ok(res):
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("shape")
    generate_spine3d(root / "hq", 4, size=16, seed=0)
    _ok(runner.invoke(shape_cli.app, ["degrade", str(root / "hq"), str(root / "coarse"), "--thickness", "3"]))
    _ok(runner.invoke(shape_cli.app, ["train", "--model", "lsd-ebm", "--data", str(root / "hq"),
                                      "--out", str(root / "run"), "--size", "16", *TINY]))
    return root


def test_degrade_file_and_folder(trained):
    files = sorted((trained / "coarse").glob("*.nii.gz"))
    assert len(files) == 4
    hq = np.asanyarray(nib.load(str(trained / "hq" / files[0].name)).dataobj)
    coarse = np.asanyarray(nib.load(str(files[0])).dataobj)
    assert coarse.shape == hq.shape and not np.array_equal(coarse, hq)
    assert (coarse[0:3] == coarse[0:1]).all()  # slabs of 3 along axis 0
    out = trained / "one.nii.gz"
    _ok(runner.invoke(shape_cli.app, ["degrade", str(trained / "hq" / files[0].name), str(out),
                                      "--thickness", "4", "--axis", "2", "--noise", "0.1"]))
    assert out.is_file()


def test_train_refine_sample_evaluate(trained, tmp_path):
    run = trained / "run"
    assert (run / "model" / "config.json").is_file() and not (run / "run.json").exists()
    from latentmed.config import load_run_config
    from latentmed.shape.training import ShapeRunConfig

    saved = load_run_config(run, ShapeRunConfig)  # the run's one config.yaml, resolved
    assert saved.kind == "lsd-ebm" and saved.data.path == str(trained / "hq") and saved.train.steps == 2
    assert saved.model["image_size"] == 16 and saved.model["num_steps"] == 3 and saved.objective.kl_weight == 0.0
    _ok(runner.invoke(shape_cli.app, ["refine", str(run), "--input", str(trained / "coarse"),
                                      "--out", str(tmp_path / "refined"), "--steps", "2"]))
    refined = sorted((tmp_path / "refined").glob("*.nii.gz"))
    assert len(refined) == 4 and np.asanyarray(nib.load(str(refined[0])).dataobj).shape == (16, 16, 16)
    _ok(runner.invoke(shape_cli.app, ["sample", str(run), "--n", "2", "--out", str(tmp_path / "samples")]))
    assert len(list((tmp_path / "samples").glob("*.nii.gz"))) == 2
    res = _ok(runner.invoke(shape_cli.app, ["evaluate", "--input", str(trained / "coarse"), "--truth",
                                            str(trained / "hq"), "--run", f"LSD-EBM={run}",
                                            "--out", str(tmp_path / "eval"), "--figures", "1"]))
    assert "| input |" in res.output and "| LSD-EBM |" in res.output
    for name in ("table.md", "per_case.csv", "summary.json", "latent_variance.png", "case_000.png"):
        assert (tmp_path / "eval" / name).is_file(), name
    # the input row equals the metrics helper called as (truth, pred)
    names, coarse, truth = load_pairs(trained / "coarse", trained / "hq", 16)
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    ref = segmentation_scores(torch.from_numpy(truth), torch.from_numpy(coarse))
    assert summary["metrics"]["input"]["sensitivity"]["mean"] == pytest.approx(float(ref["sensitivity"].mean()))
    assert summary["metrics"]["input"]["dice"]["mean"] == pytest.approx(float(ref["dice"].mean()))
    # the phantom's part maps give the posterior-element table: the input scored inside posterior_region
    from latentmed.shape.evaluate import load_part_cubes, posterior_region, score_cases

    parts = load_part_cubes(trained / "hq", names, 16)
    assert parts is not None and np.array_equal(parts > 0, truth)
    post = score_cases(truth, coarse, posterior_region(parts))["dice"].mean()
    assert summary["posterior_metrics"]["input"]["dice"]["mean"] == pytest.approx(float(post))
    assert "**posterior**" in res.output and res.output.count("| input |") == 2
    assert load_part_cubes(trained / "coarse", names, 16) is None  # no parts/ folder: no posterior table


def test_bad_inputs_give_one_line_errors(trained, tmp_path):
    soft = tmp_path / "soft"
    soft.mkdir()
    nib.save(nib.Nifti1Image(np.full((8, 8, 8), 0.4, np.float32), np.eye(4)), str(soft / "a.nii.gz"))
    res = runner.invoke(shape_cli.app, ["degrade", str(soft), str(tmp_path / "o")])
    assert res.exit_code == 2 and "--threshold 0.5" in res.output
    res = runner.invoke(shape_cli.app, ["refine", str(trained / "run"), "--input", str(soft), "--out",
                                        str(tmp_path / "o2"), "--threshold", "0.5"])
    assert res.exit_code == 2 and "empty" in res.output
    res = runner.invoke(shape_cli.app, ["train", "--model", "gan", "--data", str(trained / "hq"),
                                        "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "lsd-ebm" in res.output
    res = runner.invoke(shape_cli.app, ["evaluate", "--input", str(trained / "coarse"), "--truth", str(soft),
                                        "--out", str(tmp_path / "e")])
    assert res.exit_code == 2 and "no truth" in res.output
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_reference_recipe_trains_refines_and_evaluate_prints_the_controls(trained, tmp_path):
    run = tmp_path / "ref"
    _ok(runner.invoke(shape_cli.app, ["train", "--model", "lsd-ebm", "--data", str(trained / "hq"), "--out", str(run),
                                      "--size", "16", *TINY, "--set", "objective.recipe=reference"]))
    import yaml

    saved = yaml.safe_load((run / "config.yaml").read_text())  # the resolved run
    m = saved["model"]  # the reference's keys where the run set none (TINY sets widths, T and K)
    assert (m["recipe"], m["schedule"], m["forward_noise"], m["posterior"], m["energy_net"]) == \
        ("reference", "reference", 0.1, "shared", "mlp-raw-t")
    assert m["langevin_steps"] == 2 and m["langevin_init"] == "noise" and m["rescale_last"] is False
    t = saved["train"]  # lr 2e-5, no clipping, no EMA; batch_size 2 was set by the run
    assert (t["lr"], t["energy_lr"], t["grad_clip"], t["ema_decay"], t["batch_size"]) == (2e-5, 2e-5, 0.0, 0.0, 2)
    assert saved["objective"]["posterior_term"] == "reference_entropy"
    _ok(runner.invoke(shape_cli.app, ["refine", str(run), "--input", str(trained / "coarse"),
                                      "--out", str(tmp_path / "refined"), "--recipe", "reference"]))
    assert len(list((tmp_path / "refined").glob("*.nii.gz"))) == 4
    res = _ok(runner.invoke(shape_cli.app, ["evaluate", "--input", str(trained / "coarse"), "--truth",
                                            str(trained / "hq"), "--run", f"R={run}", "--out", str(tmp_path / "e"),
                                            "--figures", "0", "--controls", "--sweep-points", "2"]))
    for row in ("| R energy off |", "| R round trip |", "| R t=0 |", "| R t=3 |", "**controls: direction**"):
        assert row in res.output, row
    res = runner.invoke(shape_cli.app, ["refine", str(run), "--input", str(trained / "coarse"),
                                        "--out", str(tmp_path / "o"), "--recipe", "paper"])
    assert res.exit_code == 2 and "recipe='paper'" in res.output
