"""Thread policy (latentmed.runtime, --threads, LATENTMED_THREADS) and same seed, same result across processes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from latentmed.errors import LatentmedError
from latentmed.runtime import available_cpus, choose_threads, parse_threads
from test_cli_dae import MICRO as CLI_MICRO

# test_cli_dae's micro run, shorter: 4 steps, a checkpoint every 2
MICRO = {**CLI_MICRO, "train": {**CLI_MICRO["train"], "steps": 4, "checkpoint_every": 2, "log_every": 1},
         "latent": {**CLI_MICRO["latent"], "steps": 3}}


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("LATENTMED_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME")}
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, **extra)
    return env


def test_thread_count_sources(monkeypatch):
    monkeypatch.delenv("LATENTMED_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert choose_threads() == (available_cpus(), "cpus")
    assert available_cpus() <= len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads() == (3, "OMP_NUM_THREADS")
    monkeypatch.setenv("LATENTMED_THREADS", "2")
    assert choose_threads() == (2, "LATENTMED_THREADS")
    assert choose_threads(5) == (5, "--threads")
    assert choose_threads("auto") == (2, "LATENTMED_THREADS")
    for bad in ("-1", "two", "1.5"):
        with pytest.raises(LatentmedError, match="positive number of threads"):
            parse_threads(bad, "--threads")
    monkeypatch.setenv("LATENTMED_THREADS", "x")
    with pytest.raises(LatentmedError, match="LATENTMED_THREADS must be"):
        choose_threads()


def test_cgroup_quota_caps_the_cpus(monkeypatch):
    from latentmed import runtime

    files = {"/sys/fs/cgroup/cpu.max": "100000 100000"}  # docker --cpus=1
    monkeypatch.setattr(runtime, "_read", files.get)
    assert runtime.available_cpus() == 1
    files["/sys/fs/cgroup/cpu.max"] = "max 100000"
    assert runtime.available_cpus() == len(os.sched_getaffinity(0))
    files.clear()
    files["/sys/fs/cgroup/cpu/cpu.cfs_quota_us"] = "150000"  # cgroup v1, 1.5 CPUs -> 2 threads
    assert runtime._cgroup_cpu_quota() == 2


def test_policy_is_set_before_torch_loads():
    """The CLI sets the passive wait policy and the thread count before torch loads (a fresh process)."""
    code = ("from latentmed.cli.main import _state, main\n"
            "import sys, os\n"
            "assert 'torch' not in sys.modules\n"
            "line = _state.get('threads_line')\n"
            "import torch\n"
            "print(os.environ['OMP_WAIT_POLICY'], os.environ['KMP_BLOCKTIME'], torch.get_num_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["PASSIVE", "0", "1"]
    out = subprocess.run([sys.executable, "-m", "latentmed.cli.main", "--threads", "1", "presets"],
                         env=_env(OMP_WAIT_POLICY="ACTIVE"), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("Threads: 1 (--threads;") == 1 and "wait policy active" in out.stderr  # user's choice kept
    out = subprocess.run([sys.executable, "-m", "latentmed.cli.main", "--threads", "zero", "presets"],
                         env=_env(), capture_output=True, text=True)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "--threads" in out.stderr


def _train_and_encode(root, name):
    """`latentmed dae train` then `dae encode` in one fresh process (the CLI entry point, 1 thread)."""
    code = ("import sys\nfrom latentmed.cli.main import main\n"
            "for argv in ([%r], [%r]):\n"
            "    try:\n        main(argv[0])\n    except SystemExit as e:\n        assert not e.code, e.code\n")
    train = ["dae", "train", "--data", str(root / "ph" / "images"), "--config", str(root / "cfg.yaml"), "--size",
             "16", "--out", str(root / name)]
    encode = ["dae", "encode", str(root / name), "--data", str(root / "ph" / "images"), "--out",
              str(root / f"{name}.npz")]
    subprocess.run([sys.executable, "-c", code % (train, encode)], env=_env(), check=True, capture_output=True)


def test_same_seed_same_result_in_two_processes(tmp_path):
    from latentmed.data.phantoms.spine2d import generate_spine2d
    from latentmed.io import load_safetensors

    generate_spine2d(tmp_path / "ph", n=8, size=16, seed=0)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(MICRO))
    for name in ("a", "b"):
        _train_and_encode(tmp_path, name)
    logs = [(tmp_path / n / "log.csv").read_text() for n in ("a", "b")]
    assert logs[0] == logs[1] and len(logs[0].splitlines()) == 5  # header + 4 steps, identical losses
    for part in ("model/model.safetensors", "latent/model/model.safetensors"):
        wa, wb = (load_safetensors(tmp_path / n / part) for n in ("a", "b"))
        assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa), part
    za, zb = (np.load(tmp_path / f"{n}.npz")["z_sem"] for n in ("a", "b"))
    assert np.array_equal(za, zb)


def test_seed_everything_fixes_initial_weights():
    import torch

    from latentmed.runtime import seed_everything

    def build():
        seed_everything(7)
        return torch.nn.Linear(4, 4).weight.detach().clone(), np.random.rand(), __import__("random").random()

    first, second = build(), build()
    assert torch.equal(first[0], second[0]) and first[1:] == second[1:]


@pytest.mark.slow
def test_demo_tables_same_in_two_processes(tmp_path):
    """The demo pipeline (at its smallest) writes the same tables in two processes."""
    code = ("import json, sys\nfrom latentmed.demo import DemoSettings, run_demo\n"
            "s = DemoSettings(n_images=32, dae_steps=6, latent_steps=4, decode_steps=2, n_show=2, cnn_epochs=1)\n"
            "run_demo(sys.argv[1], settings=s)\n")
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], env=_env(), check=True,
                       capture_output=True)
    reports = [json.loads((tmp_path / n / "report.json").read_text()) for n in ("a", "b")]
    for r in reports:
        r["facts"].pop("timings_s")
    assert reports[0]["facts"] == reports[1]["facts"]
    assert reports[0]["grading"]["rows"] == reports[1]["grading"]["rows"]
    tables = [(tmp_path / n / "grading" / "table.md").read_text() for n in ("a", "b")]
    assert tables[0] == tables[1]


def test_shape_and_vae_training_ignore_the_global_seed(tmp_path):
    """Shape models and the LDM's VAE are built after seeding from train.seed: prior RNG use changes nothing."""
    import torch

    from latentmed.data.phantoms.chest2d import generate_chest2d
    from latentmed.data.phantoms.spine3d import generate_spine3d
    from latentmed.ldm.training import LDMDataConfig, VAEModelConfig, VAERunConfig, train_vae
    from latentmed.config import merge_config
    from latentmed.shape.training import ShapeRunConfig, train_shape_model
    from latentmed.train import TrainConfig

    generate_spine3d(tmp_path / "hq", 2, size=16, seed=0)
    generate_chest2d(tmp_path / "chest", n=4, size=32, seed=0)
    cfg = merge_config(ShapeRunConfig, None, ["model.latent_dim=4", "model.base_channels=4", "model.max_channels=8",
                                 "train.steps=1", "train.batch_size=2", "train.progress=false",
                                 "train.checkpoint_every=0"])
    shapes, vaes = [], []
    for i, noise in enumerate((1, 2)):
        torch.manual_seed(noise)  # whatever ran before must not matter
        res = train_shape_model("vae", tmp_path / "hq", tmp_path / f"shape{i}", cfg, image_size=16)
        shapes.append({k: v.clone() for k, v in res.model.state_dict().items()})
        torch.manual_seed(noise)
        spec = VAERunConfig(model=VAEModelConfig(block_out_channels=(16, 32), latent_channels=2),
                            train=TrainConfig(steps=1, batch_size=2, progress=False, checkpoint_every=0),
                            data=LDMDataConfig(path=str(tmp_path / "chest"), size=32))
        vae = train_vae(spec, tmp_path / f"vae{i}").model
        vaes.append({k: v.clone() for k, v in vae.state_dict().items()})
    for a, b in (shapes, vaes):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
