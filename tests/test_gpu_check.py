"""benchmarks/gpu_check.sh --dry-run: every section of the GPU check runs (tiny sizes, CPU) and writes its JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_writes_every_section(tmp_path):
    out = tmp_path / "check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHON": sys.executable,
           "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["dry_run"] and result["device"] == "cpu" and result["peak_bf16_tflops"] is None
    assert len(result["train"]) == 2 and all(r["images_per_s"] > 0 and r["gflop_per_image"] > 0
                                             for r in result["train"])
    assert [r["steps"] for r in result["decode"]] == [2, 3] and all(r["images_per_s"] > 0 for r in result["decode"])
    # the figures are of the model it names: its parameter count, and throughput = batch / step time
    from latentmed.dae import DiffusionAutoencoder, preset_config

    n_params = DiffusionAutoencoder(preset_config("tiny", image_size=16)).num_parameters()["total"]
    for r in result["train"]:
        assert r["params"] == n_params and r["images_per_s"] == pytest.approx(r["batch"] / r["s_per_step"], rel=0.05)
    assert result["train"][0]["gflop_per_image"] == result["train"][1]["gflop_per_image"]  # same model, same count
    assert result["lsd_ebm"]["s_per_sample"] > 0 and result["ldm"]["images_per_s"] > 0
    assert not (tmp_path / "check.json.tmp").exists()


def test_peak_flops_table_names_the_common_gpus(monkeypatch):
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_check import peak_flops

    assert peak_flops("cpu", None) is None and peak_flops("cpu", 100.0) == 100e12
    for name, tflops in (("NVIDIA H200", 989), ("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756),
                         ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA L40S", 362), ("NVIDIA L4", 121),
                         ("NVIDIA A10G", 70), ("Tesla T4", None)):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0, n=name: n)
        assert peak_flops("cuda", None) == (None if tflops is None else tflops * 1e12), name
