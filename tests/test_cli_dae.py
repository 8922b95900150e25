"""The `latentmed dae` and `info` commands end to end on a micro model and a small phantom."""

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from latentmed.cli.main import app

runner = CliRunner()

MICRO = {"preset": "tiny",
         "model": {"image_size": 16, "model_channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1,
                   "attention_resolutions": [8], "z_dim": 16,
                   "encoder": {"channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": []}},
         "train": {"steps": 6, "batch_size": 4, "checkpoint_every": 3, "log_every": 2, "progress": False},
         "latent": {"steps": 4, "batch_size": 8, "hidden": 16, "num_layers": 1}}


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    run("phantom", "spine2d", root / "ph", "--n", 12, "--size", 32, "--seed", 0)
    (root / "cfg.yaml").write_text(yaml.safe_dump(MICRO))
    run("dae", "train", "--data", root / "ph" / "images", "--labels", root / "ph" / "labels.csv", "--config",
        root / "cfg.yaml", "--size", 16, "--objective", "two-phase", "--out", root / "run")
    return root


def test_train_writes_run_and_resumes(trained):
    run_dir = trained / "run"
    for name in ("config.yaml", "log.csv", "model/config.json", "model/model.safetensors",
                 "latent/model/model.safetensors", "checkpoint/trainer_state.pt"):
        assert (run_dir / name).is_file(), name
    out = run("dae", "train", "--data", trained / "ph" / "images", "--config", trained / "cfg.yaml", "--size", 16,
              "--set", "train.steps=8", "--out", run_dir)
    assert "Resuming" in out or (run_dir / "log.csv").read_text().strip().splitlines()[-1].startswith("8,")
    assert "training step" in run("info", run_dir)
    from latentmed.dae.describe import describe_run

    info = describe_run(run_dir)
    assert info["latent DDIM"] == "yes" and info["image"] == "1 x 16^2" and info["z_sem dim"] == "16"
    n = {k: int(info[f"parameters ({k})"].replace(",", "")) for k in ("encoder", "decoder", "total")}
    assert n["total"] == n["encoder"] + n["decoder"] > 0


def test_encode_reconstruct_sample_interpolate(trained):
    r, ph = trained / "run", trained / "ph" / "images"
    run("dae", "encode", r, "--data", ph, "--out", trained / "lat.npz", "--stochastic", "--steps", 3)
    lat = np.load(trained / "lat.npz")
    assert lat["z_sem"].shape == (12, 16) and lat["x_T"].shape == (12, 1, 16, 16)
    assert str(lat["model_id"]) and len(lat["ids"]) == 12
    out = run("dae", "reconstruct", r, "--data", ph, "--out", trained / "rec", "--steps", 3, "--limit", 4)
    assert "PSNR" in out and (trained / "rec" / "grid.png").is_file() and len(list((trained / "rec").glob("*.png"))) == 5
    run("dae", "sample", r, "--n", 3, "--steps", 3, "--latent-steps", 3, "--out", trained / "samples")
    assert len(list((trained / "samples").glob("sample_*.png"))) == 3
    ids = lat["ids"][:2]
    run("dae", "interpolate", r, ids[0], ids[1], "--data", ph, "--n", 3, "--steps", 3, "--out", trained / "s.png")
    assert (trained / "s.png").is_file()


def test_errors_are_one_line(trained, tmp_path):
    result = runner.invoke(app, ["dae", "encode", str(tmp_path), "--data", str(trained / "ph" / "images"),
                                 "--out", str(tmp_path / "x.npz")])
    assert result.exit_code == 2 and "no trained DAE found" in result.output and "Traceback" not in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("trian: {}\n")
    result = runner.invoke(app, ["dae", "train", "--data", str(trained / "ph" / "images"), "--config", str(bad),
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "Valid keys" in result.output
    result = runner.invoke(app, ["dae", "interpolate", str(trained / "run"), "nope", "nada", "--data",
                                 str(trained / "ph" / "images")])
    assert result.exit_code == 2 and "not found" in result.output
