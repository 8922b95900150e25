"""Checkpoint writes survive a kill at any instant, and resuming cleans up after them.

A kill is simulated by copying the run folder before and after every file-system operation of
``save_checkpoint`` (what a killed process would leave on disk at that point).
"""

import os
import shutil
from pathlib import Path

import pytest
import torch

from latentmed.train import checkpoint as ck


def _states(value: float):
    w = {"w": torch.full((4,), value)}
    return w, {"w": torch.full((4,), value + 0.5)}, {"step": int(value), "optimizer": {}, "ema_updates": 0}


def _step_of(run: Path):
    loaded = ck.load_checkpoint(run)
    return None if loaded is None else int(loaded[2]["step"])


def _snapshots(tmp_path: Path, monkeypatch) -> list[Path]:
    """Run folders as a kill before/after each operation of one save (old step 1 -> new step 2)."""
    run = tmp_path / "run"
    ck.save_checkpoint(run, *_states(1))
    shots: list[Path] = []

    def snap():
        dst = tmp_path / f"kill{len(shots):02d}"
        shutil.copytree(run, dst, symlinks=True)
        shots.append(dst)

    def wrap(fn):
        def inner(*args, **kwargs):
            snap()
            out = fn(*args, **kwargs)
            snap()
            return out

        return inner

    monkeypatch.setattr(ck.os, "replace", wrap(os.replace))
    monkeypatch.setattr(ck.shutil, "rmtree", wrap(shutil.rmtree))
    monkeypatch.setattr(ck, "save_safetensors", wrap(ck.save_safetensors))
    monkeypatch.setattr(ck.torch, "save", wrap(torch.save))
    ck.save_checkpoint(run, *_states(2))
    monkeypatch.undo()
    return shots


def test_a_kill_at_any_point_leaves_a_checkpoint(tmp_path, monkeypatch):
    shots = _snapshots(tmp_path, monkeypatch)
    assert len(shots) >= 10
    steps = [_step_of(s) for s in shots]
    assert all(step in (1, 2) for step in steps), steps  # before: None between the two renames
    assert steps[0] == 1 and steps[-1] == 2
    assert any(not (s / "checkpoint").exists() for s in shots)  # the instant between the renames is covered


def test_resume_repairs_and_removes_temporaries(tmp_path, monkeypatch):
    for shot in _snapshots(tmp_path, monkeypatch):
        before = _step_of(shot)
        ck.recover_checkpoint(shot)
        assert sorted(p.name for p in shot.iterdir()) == ["checkpoint"], shot
        assert _step_of(shot) == before
        ck.save_checkpoint(shot, *_states(3))  # the next write works from the repaired folder
        assert _step_of(shot) == 3 and sorted(p.name for p in shot.iterdir()) == ["checkpoint"]


def test_stale_temporaries_reported(tmp_path):
    run = tmp_path / "run"
    ck.save_checkpoint(run, *_states(1))
    (run / ".checkpoint.abc123").mkdir()
    (run / ".checkpoint.abc123" / "model.safetensors").write_bytes(b"x" * 1000)
    lines = ck.recover_checkpoint(run)
    assert len(lines) == 1 and "1 temporary checkpoint folder" in lines[0]
    assert not (run / ".checkpoint.abc123").exists() and _step_of(run) == 1


def test_incomplete_checkpoint_is_an_error(tmp_path):
    run = tmp_path / "run"
    ck.save_checkpoint(run, *_states(1))
    (run / "checkpoint" / "trainer_state.pt").unlink()
    with pytest.raises(ck.LatentmedError, match="incomplete checkpoint"):
        ck.load_checkpoint(run)


def test_training_resume_cleans_up(tmp_path):
    """The training loop runs the repair on resume: a stale temporary and a stranded backup go."""
    from torch import nn

    from latentmed.train import TrainConfig, train

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return torch.full((2,), float(i))

    def loss_fn(model, batch, step):
        return (model(batch) ** 2).mean(1)

    cfg = TrainConfig(steps=2, batch_size=4, checkpoint_every=1, log_every=1, progress=False)
    run = tmp_path / "run"
    torch.manual_seed(0)
    train(nn.Linear(2, 1), loss_fn, Data(), cfg, run, save_model=False)
    os.replace(run / "checkpoint", run / "checkpoint.prev")  # killed between the renames
    (run / ".checkpoint.dead").mkdir()
    cfg.steps = 3
    result = train(nn.Linear(2, 1), loss_fn, Data(), cfg, run, save_model=False)
    assert result.step == 3 and int(result.history[-1]["step"]) == 3
    assert sorted(p.name for p in run.iterdir() if "checkpoint" in p.name) == ["checkpoint"]
    assert _step_of(run) == 3
