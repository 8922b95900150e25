"""Metric classes reduce across DDP ranks: two gloo processes, each with part of the data, get the whole-data value."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from latentmed.metrics import PSNR, SegmentationScores, psnr, segmentation_scores


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun/gloo test is for Linux CI")
def test_two_ranks_get_the_metric_of_the_whole_data(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    with socket.socket() as sock:  # a free port (torchrun's --master_port 0 hangs with gloo)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), str(Path(__file__).parent / "_ddp_metrics_worker.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for rank, result in enumerate(ranks):
        for name, (got, whole, local) in result.items():
            np.testing.assert_allclose(got, whole, rtol=1e-9, atol=1e-12, err_msg=f"rank {rank}: {name}")
            if name != "fid_own_formula":  # the shards differ from the whole, so a missing sync would fail
                assert not np.allclose(local, whole, rtol=1e-6), f"rank {rank}: {name} shard equals the whole"


def test_forward_returns_the_batch_value_and_accumulates():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 8, 8, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    m = PSNR()
    batch = m(x[:2], y[:2])  # torchmetrics' forward: this batch's value, and the batch is kept
    np.testing.assert_allclose(batch, psnr(x[:2], y[:2]).double().mean(), rtol=1e-6)
    m.update(x[2:], y[2:])
    np.testing.assert_allclose(m.compute(), psnr(x, y).double().mean(), rtol=1e-6)
    assert m.values().shape == (6,)
    truth, pred = torch.rand(3, 6, 6, generator=g) < 0.5, torch.rand(3, 6, 6, generator=g) < 0.5
    s = SegmentationScores(hausdorff=True)
    s.update(truth, pred)
    assert set(s.compute()) == set(segmentation_scores(truth, pred, hausdorff=True))
