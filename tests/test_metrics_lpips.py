"""LPIPS: the computation against a hand-written formula, and loading the torchvision layout."""

import numpy as np
import pytest
import torch
from torch import nn

from latentmed.errors import LatentmedError
from latentmed.metrics import lpips as lp


class _TinyBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)

    def forward(self, x):
        a = torch.relu(self.c1(x))
        return [a, torch.relu(self.c2(a))]


def test_lpips_matches_hand_formula():
    torch.manual_seed(0)
    backbone = _TinyBackbone()
    w = [torch.rand(4), torch.rand(6)]
    metric = lp.LPIPS(backbone, w)
    x, y = torch.rand(2, 3, 1, 12, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    got = metric(x, y)
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    with torch.no_grad():
        fx = backbone((x.float().repeat(1, 3, 1, 1) - shift) / scale)
        fy = backbone((y.float().repeat(1, 3, 1, 1) - shift) / scale)
    ref = 0
    for a, b, wl in zip(fx, fy, w):
        na = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        ref = ref + torch.einsum("bchw,c->bhw", (na - nb) ** 2, wl).mean(dim=(1, 2))
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    assert torch.all(metric(x, x) == 0)
    acc = lp.MeanLPIPS(metric)
    acc.update(x, y)
    np.testing.assert_allclose(acc.compute(), ref.double().mean(), rtol=1e-5)


def test_lpips_from_files_loads_torchvision_layout(tmp_path):
    from latentmed.io import save_safetensors

    torch.manual_seed(0)
    feats = lp._alexnet_features()
    save_safetensors(tmp_path / "alexnet.safetensors", {f"features.{k}": v for k, v in feats.state_dict().items()})
    lin = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}
    torch.save(lin, tmp_path / "alex.pth")
    metric = lp.LPIPS.from_files("alex", tmp_path / "alexnet.safetensors", tmp_path / "alex.pth")
    x, y = torch.rand(2, 2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    d = metric(x, y)
    assert d.shape == (2,) and torch.all(d > 0)
    with torch.no_grad():  # the taps are the torchvision layer indices 2, 5, 8, 10, 12
        h = feats[:2](((x.float() - metric.shift) / metric.scale))
    assert torch.allclose(metric.backbone(((x.float() - metric.shift) / metric.scale))[0], h)
    with pytest.raises(LatentmedError, match="download.pytorch.org"):
        lp.LPIPS.from_files("alex", tmp_path / "nope.pth", tmp_path / "alex.pth")
    with pytest.raises(LatentmedError, match="weights not given"):
        lp.LPIPS.from_files("vgg")
