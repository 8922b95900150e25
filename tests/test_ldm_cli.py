"""The `latentmed ldm` / `latentmed data` commands end to end on a tiny chest2d set."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from latentmed.data.phantoms.chest2d import generate_chest2d
from latentmed.errors import LatentmedError


def test_train_embed_synthesize_evaluate(tmp_path):
    from latentmed.cli import data as data_cli
    from latentmed.cli import ldm as cli
    from latentmed.ldm import load_ldm
    from latentmed.ldm.data import open_ldm_images
    from latentmed.ldm.training import load_embeddings

    generate_chest2d(tmp_path / "train", n=24, size=32, seed=0)
    generate_chest2d(tmp_path / "test", n=16, size=32, seed=1)
    generate_chest2d(tmp_path / "val", n=4, size=32, seed=2)  # a validation split of the pool for selection
    run = lambda app, args: CliRunner().invoke(app, [str(a) for a in args])  # noqa: E731
    fast = ["--set", "train.progress=false", "--set", "train.checkpoint_every=0", "--set", "train.log_every=1",
            "--batch-size", 4]
    r = run(cli.app, ["train-vae", tmp_path / "train", "--out", tmp_path / "vae", "--size", 32,
                      "--channels", "16,32", "--steps", 3, *fast])
    assert r.exit_code == 0, r.output
    r = run(cli.app, ["embed", tmp_path / "train", "--conditioner", "tiny", "--size", 32,
                      "--out", tmp_path / "emb.safetensors"])
    assert r.exit_code == 0, r.output
    (tmp_path / "ldm.yaml").write_text("data: {size: 64}\ntrain: {steps: 7}\n")  # the options below beat it
    r = run(cli.app, ["train", tmp_path / "train", "--vae", tmp_path / "vae", "--conditioner", "tiny",
                      "--config", tmp_path / "ldm.yaml",
                      "--out", tmp_path / "run", "--size", 32, "--channels", "16,32", "--steps", 2,
                      "--embeddings", tmp_path / "emb.safetensors", "--heldout", tmp_path / "val",
                      "--fid-every", 2, "--set", "eval.images=4", "--set", "eval.steps=1", *fast,
                      "--recipe", "paper", "--set", "train.warmup_steps=5"])
    assert r.exit_code == 0, r.output
    ldm = load_ldm(tmp_path / "run")
    assert ldm.config.extra["best_step"] == 2 and np.isfinite(ldm.config.extra["best_fid"])
    assert ldm.config.extra["selection_data"] == str((tmp_path / "val").resolve())
    from latentmed.config import load_run_config
    from latentmed.ldm.training import LDMRunConfig, VAERunConfig

    saved = load_run_config(tmp_path / "run")  # one config.yaml per run folder, options included; its kind found
    assert isinstance(saved, LDMRunConfig) and (saved.data.size, saved.train.steps) == (32, 2)
    assert saved.train.eval_every == 2 and saved.eval.images == 4 and saved.model.block_out_channels == (16, 32)
    # the paper recipe under the explicit --set: lr 1e-4, augmentation, discrete times; warm-up from --set
    assert (saved.train.lr, saved.train.warmup_steps, saved.data.augment, saved.objective.time_sampling) == \
        (1e-4, 5, True, "discrete")
    assert load_run_config(tmp_path / "vae", VAERunConfig).data.size == 32
    # the test set never reaches checkpoint selection: evaluating on the selection folder is refused
    r = run(cli.app, ["augment-eval", tmp_path / "run", "--data", tmp_path / "train", "--test", tmp_path / "val",
                      "--out", tmp_path / "leak", "--subsets", "8", "--ratios", "1", "--folds", 2])
    assert r.exit_code != 0 and "checkpoint selection" in r.output and not (tmp_path / "leak").exists()
    assert len(list(csv.reader(open(tmp_path / "run" / "log.csv")))) >= 3  # header + 2 steps
    ds = open_ldm_images(tmp_path / "train", size=32)
    z = ldm.vae.encode(ds.stack()).latent_dist.mean * ldm.scaling_factor
    assert abs(z.std().item() - 1) < 1e-3  # scaling factor = 1 / std of the training latents
    with pytest.raises(LatentmedError, match="other images"):
        load_embeddings(tmp_path / "emb.safetensors", ldm.conditioner, ds.ids[::-1])

    r = run(cli.app, ["augment-eval", tmp_path / "run", "--data", tmp_path / "train", "--test", tmp_path / "test",
                      "--out", tmp_path / "rep", "--subsets", "8,16", "--ratios", "1,2", "--folds", 2,
                      "--steps", 1, "--epochs", 1, "--min-steps", 3, "--classifier-size", 16])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "rep" / "results.json").read_text())
    settings = {(row["subset"], row["setting"]) for row in res["rows"]}
    assert settings == {(n, s) for n in (8, 16) for s in ("real", "real+syn 1:1", "real+syn 1:2",
                                                          "syn-only 1:1", "syn-only 1:2")}
    assert all(0 <= row["auc_mean"] <= 1 and len(row["aucs"]) == 2 for row in res["rows"])  # 2 folds
    assert set(res["gate"]) == {"real_test", "syn"} and res["protocol"]["folds"] == 2
    assert "| 16 | real+syn 1:2 |" in (tmp_path / "rep" / "table.md").read_text()
    assert (tmp_path / "rep" / "memorisation_closest.png").is_file()
    r = run(cli.app, ["grid", tmp_path / "run", "--data", tmp_path / "test", "--out", tmp_path / "g", "--n", 2,
                      "--steps", 1])
    assert r.exit_code == 0 and (tmp_path / "g" / "interpolation.png").is_file()

    # clear errors: exit code 2 and a message naming the problem
    r = run(cli.app, ["synthesize", tmp_path / "run", "--data", tmp_path / "train", "--out", tmp_path / "s",
                      "--subset", 100])
    assert r.exit_code == 2 and "larger than the 24 images" in r.output
    r = run(cli.app, ["embed", tmp_path / "train", "--conditioner", tmp_path / "none", "--out", tmp_path / "e"])
    assert r.exit_code == 2 and "no ViT weights at" in r.output
    r = run(cli.app, ["train", tmp_path / "train", "--vae", tmp_path / "novae", "--conditioner", "tiny",
                      "--out", tmp_path / "r2"])
    assert r.exit_code == 2 and "no VAE weights at" in r.output
    r = run(data_cli.app, ["shard", tmp_path / "train", "--out", tmp_path / "sh", "--shard-size", 10])
    assert r.exit_code == 0 and len(list((tmp_path / "sh").glob("*.tar"))) == 3
    assert torch.equal(open_ldm_images(tmp_path / "sh", size=32).stack(), ds.stack())
