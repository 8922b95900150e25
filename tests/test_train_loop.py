"""The shared training loop: resume continues the same loss curve, checkpoints, DDP sync, config errors."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from latentmed.config import load_config, parse_overrides
from latentmed.errors import LatentmedError
from latentmed.train import TrainConfig, train
from latentmed.train.checkpoint import load_checkpoint


class Data(torch.utils.data.Dataset):
    def __len__(self):
        return 50

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        x = torch.randn(3, generator=g)
        return {"x": x, "y": x.sum(0, keepdim=True)}


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))


def loss_fn(model, batch, step):
    noise = torch.randn_like(batch["y"]) * 0.01  # uses the per-step seed
    return (model(batch["x"]) - batch["y"] - noise).pow(2).mean(1)


CFG = dict(steps=12, batch_size=8, lr=1e-2, log_every=1, checkpoint_every=4, warmup_steps=3, progress=False)


class Interrupt(Exception):
    pass


def test_killed_run_resumes_on_the_same_loss_curve(tmp_path):
    full = train(make_model(), loss_fn, Data(), TrainConfig(**CFG), tmp_path / "full", save_model=False)

    def crash(model, step, out):
        if step == 6:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(make_model(), loss_fn, Data(), TrainConfig(**CFG, preview_every=1), tmp_path / "cut",
              preview_fn=crash, save_model=False)
    assert int(load_checkpoint(tmp_path / "cut")[2]["step"]) == 4
    resumed = train(make_model(), loss_fn, Data(), TrainConfig(**CFG), tmp_path / "cut", save_model=False)
    a = [float(r["loss"]) for r in full.history]
    b = [float(r["loss"]) for r in resumed.history]
    assert len(a) == len(b) == 12
    assert a == pytest.approx(b, rel=1e-6)
    for p, q in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert a[-1] < a[0]  # it learns


def test_checkpoint_swap_is_atomic_and_ema_differs(tmp_path):
    r = train(make_model(), loss_fn, Data(), TrainConfig(**CFG), tmp_path, save_model=False)
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == [
        "ema.safetensors", "model.safetensors", "trainer_state.pt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".checkpoint")]
    assert any(not torch.allclose(p, q) for p, q in zip(r.model.parameters(), r.ema_model.parameters()))
    assert (tmp_path / "log.csv").read_text().count("\n") == 13


def test_grad_accumulation_matches_big_batch(tmp_path):
    """Two micro-batches of 4 make one optimizer step; the LR warm-up counts optimizer steps."""
    cfg = TrainConfig(steps=3, batch_size=4, grad_accum=2, lr=1e-2, log_every=1, checkpoint_every=0,
                      progress=False, warmup_steps=2)
    r = train(make_model(), loss_fn, Data(), cfg, tmp_path, save_model=False)
    assert [float(x["lr"]) for x in r.history] == pytest.approx([1e-2, 1e-2, 1e-2])
    assert r.step == 3


def test_nonfinite_loss_is_clear(tmp_path):
    def bad(model, batch, step):
        return model(batch["x"]).mean(1) * float("nan")

    with pytest.raises(LatentmedError, match="lower train.lr"):
        train(make_model(), bad, Data(), TrainConfig(**CFG), tmp_path, save_model=False)


class Saving(torch.nn.Sequential):
    def save_pretrained(self, directory):
        Path(directory).mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), Path(directory) / "w.pt")


def test_objective_gets_each_step_and_eval_fn_keeps_the_best(tmp_path):
    """The loop passes the step to the objective; eval_fn every eval_every steps keeps the best EMA model
    by the named metric (min), survives a resume, and leaves the caller's config untouched."""
    seen, evals = [], []

    def objective(model, batch, step):
        seen.append(step)
        return loss_fn(model, batch, step)

    scores = {3: 5.0, 6: 2.0, 9: 4.0, 12: 3.0}  # best at step 6

    def eval_fn(ema_model, step):
        evals.append(step)
        return {"score": scores[step], "other": 1.0}

    cfg = TrainConfig(**{**CFG, "grad_accum": 2}, eval_every=3, select_metric="score")
    model = Saving(*make_model())
    r = train(model, objective, Data(), cfg, tmp_path, eval_fn=eval_fn, save_model=False)
    assert seen == [k for k in range(12) for _ in range(2)] and evals == [3, 6, 9, 12]
    assert r.best == {"metric": "score", "value": 2.0, "step": 6} and cfg.eval_every == 3
    assert (tmp_path / "best" / "w.pt").is_file() and (tmp_path / "eval.csv").read_text().count("\n") == 5
    # a resumed run compares against the saved best (step 6), not from scratch
    cfg2 = TrainConfig(**{**CFG, "grad_accum": 2, "steps": 16}, eval_every=3, select_metric="score")
    scores.update({15: 2.5})
    r2 = train(Saving(*make_model()), objective, Data(), cfg2, tmp_path, eval_fn=eval_fn, save_model=False)
    assert r2.best["step"] == 6 and r2.step == 16 and evals[-1] == 15
    with pytest.raises(LatentmedError, match="select_metric='fid' is not among"):
        train(Saving(*make_model()), objective, Data(), TrainConfig(**CFG, eval_every=3, select_metric="fid"),
              tmp_path / "bad", eval_fn=eval_fn, save_model=False)


def test_config_unknown_key_lists_valid_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 3\nlearning_rate: 0.1\n")
    with pytest.raises(LatentmedError, match=r"unknown key\(s\) 'learning_rate'.*Valid keys: .*lr"):
        load_config(TrainConfig, path)
    cfg = load_config(TrainConfig, None, ["lr=3e-4", "steps=7"])
    assert cfg.lr == 3e-4 and cfg.steps == 7
    with pytest.raises(LatentmedError, match="expected int"):
        load_config(TrainConfig, None, ["steps=many"])
    assert parse_overrides(["a.b=1", "a.c=x"]) == {"a": {"b": 1, "c": "x"}}
    with pytest.raises(LatentmedError, match="mixed_precision"):
        TrainConfig(mixed_precision="fp8")


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun/gloo test is for Linux CI")
def test_ddp_two_processes_stay_in_sync(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    with socket.socket() as sock:  # a free port (torchrun's --master_port 0 hangs with gloo)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port),
           str(Path(__file__).parent / "_ddp_worker.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    world, spread, moved = (tmp_path / "ddp.txt").read_text().split()
    assert int(world) == 2
    assert float(spread) == 0.0  # ranks hold identical weights
    assert float(moved) > 1e-3  # and they trained
