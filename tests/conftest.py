"""Shared test settings: small thread pools (2-core CI, pytest-xdist) and deterministic seeds."""

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
