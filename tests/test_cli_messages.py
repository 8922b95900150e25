"""Messages a user can act on: numeric options, labels CSVs, missing folders, --help defaults, --device."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer

from latentmed.cli.main import app, main

ROOT = Path(__file__).resolve().parents[1]
# Numeric options that take any value (a label, a grade, a threshold) or are checked by the command itself.
FREE_NUMBERS = {("dae train", "channels"), ("evaluate segmentation", "label"), ("grade fit", "healthy_below"),
                ("grade fit", "C"), ("shape refine", "threshold"), ("shape degrade", "threshold")}


def _commands():
    """(path, click command) of every leaf command."""
    root = typer.main.get_command(app)
    stack = [("", root)]
    while stack:
        path, cmd = stack.pop()
        subs = getattr(cmd, "commands", None)
        if subs:
            stack += [(f"{path} {name}".strip(), sub) for name, sub in subs.items()]
        else:
            yield path, cmd


def _fail(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("Threads: ")]
    err = "\n".join(lines)
    assert exc.value.code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    return err


def test_every_numeric_option_has_a_range():
    unchecked = []
    for path, cmd in _commands():
        for p in cmd.params:
            numeric = getattr(p.type_descriptor, "annotation", None) in (int, float)
            ranged = getattr(p, "min", None) is not None or getattr(p, "max", None) is not None
            if numeric and not ranged and (path, p.name) not in FREE_NUMBERS:
                unchecked.append(f"{path} --{p.name}")
    assert not unchecked, unchecked
    assert len(list(_commands())) > 30


@pytest.mark.parametrize("argv, option", [
    (["dae", "train", "--data", "x", "--out", "y", "--batch-size", "0"], "--batch-size"),
    (["dae", "train", "--data", "x", "--out", "y", "--steps", "-3"], "--steps"),
    (["dae", "encode", "r", "--data", "x", "--out", "y", "--batch-size", "0"], "--batch-size"),
    (["dae", "sample", "r", "--out", "y", "--n", "0"], "--n"),
    (["phantom", "spine2d", "out", "--n", "0"], "--n"),
    (["grade", "fit", "--latents", "l", "--labels", "c", "--column", "g", "--out", "o", "--holdout", "-0.5"],
     "--holdout"),
    (["shape", "degrade", "a", "b", "--axis", "3"], "--axis"),
    (["segment", "zero-shot", "r", "--data", "d", "--out", "o", "--timestep", "1000"], "--timestep"),
    (["demo", "--steps", "0"], "--steps"),
    (["dae", "train", "--data", "x", "--out", "y", "--batch-size", "many"], "--batch-size"),
])
def test_bad_numbers_are_one_line_errors(capsys, argv, option):
    assert option in _fail(capsys, *argv)


def test_missing_option_and_bad_device_are_one_line(capsys):
    assert "Missing option '--out'" in _fail(capsys, "dae", "train", "--data", "x")
    assert "'gpu' is not a torch device" in _fail(capsys, "dae", "encode", "r", "--data", "x", "--out", "y",
                                                  "--device", "gpu")


def test_grade_fit_C_must_be_positive(capsys, tmp_path):
    assert "--C must be > 0" in _fail(capsys, "grade", "fit", "--latents", tmp_path / "l.npz", "--labels",
                                      tmp_path / "c.csv", "--column", "g", "--out", tmp_path / "o", "--C", "0")


def test_device_defaults_to_auto_everywhere():
    found = {path: p.default for path, cmd in _commands() for p in cmd.params if p.name == "device"}
    assert {"dae encode", "counterfactual make", "counterfactual evaluate", "evaluate recon"} <= set(found)
    assert set(found.values()) == {"auto"}, found


def _shown_default(param) -> str:
    """What ``--help`` shows as an option's default: its text, or its value."""
    return str(param.default if param.show_default in (None, True) else param.show_default)


def test_dae_train_help_shows_defaults():
    from latentmed.dae import DAERunConfig
    from latentmed.dae.presets import preset_config

    cmd = dict(_commands())["dae train"]
    shown = {p.name: _shown_default(p) for p in cmd.params}
    cfg = DAERunConfig()
    assert shown["preset"].startswith(cfg.preset) and shown["objective"].startswith(cfg.objective.name)
    assert shown["steps"].startswith(str(cfg.train.steps)) and shown["batch_size"].startswith(str(cfg.train.batch_size))
    assert f"{preset_config('tiny').image_size} for tiny" in shown["size"]
    assert int(shown["latent_steps"]) == cfg.latent.steps  # the second stage, shown with its length


def test_ldm_training_help_shows_the_spec_defaults():
    from latentmed.ldm.training import LDMRunConfig, VAERunConfig

    cmds = dict(_commands())
    for path, spec in (("ldm train-vae", VAERunConfig()), ("ldm train", LDMRunConfig())):
        shown = {p.name: _shown_default(p) for p in cmds[path].params}
        assert int(shown["steps"]) == spec.train.steps and int(shown["batch_size"]) == spec.train.batch_size
        assert float(shown["lr"]) == spec.train.lr, path


def test_quick_help_agrees_with_readme():
    cmd = dict(_commands())["demo"]
    quick = next(p for p in cmd.params if p.name == "quick").help
    readme = next(line for line in (ROOT / "README.md").read_text().splitlines() if "demo --quick" in line)
    seconds = re.search(r"about (\d+) s", quick).group(1)
    assert f"about {seconds} s" in readme, (quick, readme)


def test_encode_on_a_missing_folder(capsys, tmp_path):
    err = _fail(capsys, "dae", "encode", tmp_path / "nope", "--data", tmp_path, "--out", tmp_path / "z.npz")
    assert "no such folder" in err and "Is training finished" not in err


def test_labels_messages_name_the_cli_flags(tmp_path):
    from latentmed.data import read_labels
    from latentmed.errors import LatentmedError

    csv = tmp_path / "labels.csv"
    pd.DataFrame({"ID": ["a", "b"], "genant": [0, 1]}).to_csv(csv, index=False)
    with pytest.raises(LatentmedError, match="--id-column ID"):
        read_labels(csv)
    assert list(read_labels(csv, id_column="ID").index) == ["a", "b"]
    pd.DataFrame({"id": ["a", "zz"], "genant": [0, 1]}).to_csv(csv, index=False)
    with pytest.raises(LatentmedError, match="--allow-unmatched") as exc:
        read_labels(csv, ids=["a", "b"])
    assert "1 of 2 label ids" in str(exc.value)
    assert list(read_labels(csv, ids=["a", "b"], strict=False).index) == ["a"]


def test_grade_fit_says_how_many_latents_had_labels(tmp_path, capsys):
    from latentmed.latent import save_latents

    rng = np.random.default_rng(0)
    ids = [f"s{i:02d}" for i in range(40)]
    save_latents(tmp_path / "lat.npz", ids, rng.normal(size=(40, 4)).astype(np.float32))
    labelled = ids[:12]
    pd.DataFrame({"id": labelled, "genant": [0, 3] * 6}).to_csv(tmp_path / "labels.csv", index=False)
    main(["grade", "fit", "--latents", str(tmp_path / "lat.npz"), "--labels", str(tmp_path / "labels.csv"),
          "--column", "genant", "--holdout", "0.25", "--out", str(tmp_path / "grader")])
    err = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert "12 of 40 latents have a 'genant' label" in err and "fitted on 9 of them (3 held out)" in err
