"""One merge rule for every command (explicit CLI option > --set > --config YAML > defaults), one
``load_run_config``, and the DAE's latent DDIM as a visible second stage."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from typer.testing import CliRunner

from latentmed.cli.main import app
from latentmed.config import load_run_config, merge_config, save_run_config
from latentmed.errors import LatentmedError
from latentmed.train import RunResult

runner = CliRunner()


def _yaml(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _capture(monkeypatch, target: str) -> dict:
    """Replace the trainer ``target`` by one that records the run config it is given."""
    seen: dict = {}

    def fake(*args, **kwargs):
        seen["cfg"] = next(a for a in args if hasattr(a, "train"))
        out = next(a for a in args if isinstance(a, Path) and a.name == "out")
        model = SimpleNamespace(config=SimpleNamespace(scaling_factor=1.0, extra={}))  # what the CLI prints
        return RunResult(run_dir=out, model=model, step=0)

    monkeypatch.setattr(target, fake)
    return seen


def _invoke(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_merge_order_option_over_set_over_yaml_over_defaults(tmp_path):
    from latentmed.dae import DAERunConfig

    path = _yaml(tmp_path, {"train": {"steps": 5, "lr": 3e-4}, "data": {"size": 32}})
    assert merge_config(DAERunConfig).train.steps == DAERunConfig().train.steps  # defaults
    assert merge_config(DAERunConfig, path).train.steps == 5  # YAML over defaults
    assert merge_config(DAERunConfig, path, ["train.steps=6"]).train.steps == 6  # --set over YAML
    cfg = merge_config(DAERunConfig, path, ["train.steps=6"], {"train.steps": 7, "data.size": None})
    assert cfg.train.steps == 7 and cfg.data.size == 32 and cfg.train.lr == 3e-4  # option over --set; None = not given


def test_dae_train_option_beats_yaml(tmp_path, monkeypatch):
    seen = _capture(monkeypatch, "latentmed.dae.train_dae")
    cfg = _yaml(tmp_path, {"data": {"size": 32, "channels": 3}, "train": {"steps": 7}, "latent": {"steps": 9}})
    _invoke("dae", "train", "--data", tmp_path, "--out", tmp_path / "out", "--config", cfg, "--size", 64,
            "--steps", 100, "--latent-steps", 0)
    got = seen["cfg"]
    assert (got.data.size, got.train.steps, got.latent.steps) == (64, 100, 0)
    assert got.data.channels == 3  # an option left at its default does not overwrite the YAML
    _invoke("dae", "train", "--data", tmp_path, "--out", tmp_path / "out", "--config", cfg, "--set", "train.steps=8")
    assert (seen["cfg"].data.size, seen["cfg"].train.steps, seen["cfg"].latent.steps) == (32, 8, 9)


def test_ldm_train_and_train_vae_option_beats_yaml(tmp_path, monkeypatch):
    seen = _capture(monkeypatch, "latentmed.ldm.training.train_ldm")
    cfg = _yaml(tmp_path, {"data": {"size": 32, "augment": True}, "train": {"steps": 7, "lr": 1e-5}})
    _invoke("ldm", "train", tmp_path, "--vae", tmp_path, "--conditioner", "tiny", "--out", tmp_path / "out",
            "--config", cfg, "--size", 64, "--steps", 100)
    got = seen["cfg"]
    assert (got.data.size, got.train.steps, got.train.lr, got.data.augment) == (64, 100, 1e-5, True)
    seen = _capture(monkeypatch, "latentmed.ldm.training.train_vae")
    _invoke("ldm", "train-vae", tmp_path, "--out", tmp_path / "out", "--config", cfg, "--size", 64,
            "--set", "train.steps=50")
    got = seen["cfg"]
    assert (got.data.size, got.train.steps, got.train.lr) == (64, 50, 1e-5)


def test_shape_train_option_beats_yaml(tmp_path, monkeypatch):
    seen = _capture(monkeypatch, "latentmed.shape.training.train_shape_model")
    cfg = _yaml(tmp_path, {"kind": "lebm", "model": {"image_size": 32, "latent_dim": 5}, "train": {"steps": 7}})
    _invoke("shape", "train", "--model", "vae", "--data", tmp_path, "--out", tmp_path / "out", "--config", cfg,
            "--size", 16, "--set", "train.steps=9")
    got = seen["cfg"]
    assert (got.kind, got.model["image_size"], got.model["latent_dim"], got.train.steps) == ("vae", 16, 5, 9)


def test_a_named_recipe_fills_only_what_the_user_leaves_unset(tmp_path):
    """``objective.recipe=reference`` sits under YAML, --set and options: a value the user gives wins even when it
    equals the default (batch 8 here), which a rule based on "still at its default" would overwrite."""
    from latentmed.shape.configs import REFERENCE_LSDEBM, REFERENCE_TRAIN
    from latentmed.shape.training import ShapeRunConfig

    path = _yaml(tmp_path, {"train": {"batch_size": 8}, "model": {"langevin_steps": 20}})
    cfg = merge_config(ShapeRunConfig, path, ["objective.recipe=reference", "train.grad_clip=1.0"],
                       {"train.lr": 5e-4})
    assert (cfg.train.batch_size, cfg.train.grad_clip, cfg.train.lr) == (8, 1.0, 5e-4)  # YAML, --set, option
    assert (cfg.train.ema_decay, cfg.train.energy_lr) == (REFERENCE_TRAIN["ema_decay"], REFERENCE_TRAIN["energy_lr"])
    assert cfg.model["langevin_steps"] == 20 and cfg.model["langevin_init"] == REFERENCE_LSDEBM["langevin_init"]
    plain = merge_config(ShapeRunConfig, path)  # no recipe named: defaults below the YAML, nothing of the reference
    assert "recipe" not in plain.model and plain.train.ema_decay != REFERENCE_TRAIN["ema_decay"]


def test_train_shape_model_refuses_a_reference_objective_built_without_its_layer(tmp_path):
    from latentmed.shape.objectives import ShapeObjectiveConfig
    from latentmed.shape.training import ShapeRunConfig, train_shape_model

    cfg = ShapeRunConfig(objective=ShapeObjectiveConfig(recipe="reference"))
    with pytest.raises(LatentmedError, match="lacks the recipe's model keys"):
        train_shape_model("lsd-ebm", tmp_path / "hq", tmp_path / "run", cfg)


def test_load_run_config_finds_the_kind_and_refuses_another(tmp_path):
    from latentmed.dae import DAERunConfig
    from latentmed.ldm.training import LDMRunConfig, VAERunConfig
    from latentmed.shape.training import ShapeRunConfig

    for cls in (DAERunConfig, VAERunConfig, LDMRunConfig, ShapeRunConfig):
        save_run_config(cls(), tmp_path / cls.__name__)
        assert type(load_run_config(tmp_path / cls.__name__)) is cls
    with pytest.raises(LatentmedError, match="a VAERunConfig run, not a DAERunConfig run"):
        load_run_config(tmp_path / "VAERunConfig", DAERunConfig)
    with pytest.raises(LatentmedError, match="not a run folder.*latentmed dae train"):
        load_run_config(tmp_path / "nothing", DAERunConfig)


def test_dae_train_latent_stage_is_an_option_announced_before_it_runs(tmp_path):
    assert "--latent-steps" in _invoke("dae", "train", "--help")
    _invoke("phantom", "spine2d", tmp_path / "ph", "--n", 8, "--size", 16, "--seed", 0)
    micro = {"model": {"model_channels": 8, "channel_mult": [1], "num_res_blocks": 1, "attention_resolutions": [],
                       "z_dim": 8, "encoder": {"channel_mult": [1], "num_res_blocks": 1, "attention_resolutions": []}},
             "train": {"batch_size": 4, "checkpoint_every": 0, "progress": False, "preview_every": 0},
             "latent": {"batch_size": 8, "hidden": 8, "num_layers": 1}}
    args = ["dae", "train", "--data", tmp_path / "ph" / "images", "--config", _yaml(tmp_path, micro), "--size", 16,
            "--steps", 2, "--out", tmp_path / "run"]
    out = _invoke(*args, "--latent-steps", 0)
    assert "Stage 1" in out and "Stage 2" not in out and not (tmp_path / "run" / "latent").exists()
    out = _invoke(*args, "--latent-steps", 3)  # the DAE is done: only the latent DDIM trains, announced first
    assert "Stage 1" not in out and out.index("Stage 2") < out.index("Done")
    assert (tmp_path / "run" / "latent" / "model" / "config.json").is_file()
