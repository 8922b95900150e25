"""Frechet distance against closed forms and scipy's sqrtm; FID accumulation; the Inception wrapper."""

import numpy as np
import pytest
import torch
from torch import nn

from latentmed.errors import LatentmedError
from latentmed.metrics import fid as fm


def test_frechet_distance_closed_forms():
    # 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2
    d = fm.frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[9.0]]))
    np.testing.assert_allclose(d, 9 + 1)
    # commuting (diagonal) covariances: ||mu1-mu2||^2 + sum (sqrt a - sqrt b)^2
    a, b = np.array([1.0, 2.0, 3.0]), np.array([0.5, 4.0, 3.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    d = fm.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    np.testing.assert_allclose(d, 1 + 4 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum(), rtol=1e-10)
    # general SPD covariances: the pytorch-fid formula with scipy's sqrtm
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((6, 6)), rng.standard_normal((6, 6))
    s1, s2 = A @ A.T + 0.1 * np.eye(6), B @ B.T + 0.1 * np.eye(6)
    m1, m2 = rng.standard_normal(6), rng.standard_normal(6)
    ref = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
    np.testing.assert_allclose(fm.frechet_distance(m1, s1, m2, s2), ref, rtol=1e-8)
    assert abs(float(fm.frechet_distance(m1, s1, m1, s1))) < 1e-8
    with pytest.raises(LatentmedError, match="sigma2"):
        fm.frechet_distance(m1, s1, m2, s2[:3, :3])


def test_fid_accumulates_like_the_formula():
    torch.manual_seed(0)
    extractor = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    real = torch.randn(40, 1, 8, 8)
    fake = torch.randn(30, 1, 8, 8) * 1.5 + 0.3
    fid = fm.FID(extractor, batch_size=16)
    fid.update(real[:25], real=True)
    fid.update(real[25:], real=True)
    fid.update(fake, real=False)
    with torch.no_grad():
        fr, ff = extractor(real).double().numpy(), extractor(fake).double().numpy()
    from scipy.linalg import sqrtm

    s1, s2 = np.cov(fr, rowvar=False), np.cov(ff, rowvar=False)
    ref = ((fr.mean(0) - ff.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
    np.testing.assert_allclose(fid.compute(), ref, rtol=1e-6)
    fid.reset_generated()  # keeps the real statistics
    fid.update(real, real=False)
    assert abs(float(fid.compute())) < 1e-8
    fid.reset()
    with pytest.raises(LatentmedError, match="at least 2 real"):
        fid.compute()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_inception_wrapper(tmp_path):
    class Detector(nn.Module):  # same call signature as NVIDIA's inception-2015-12-05.pt
        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            assert x.dtype == torch.uint8
            return x.float().mean(dim=(2, 3))

    path = tmp_path / "det.pt"
    torch.jit.script(Detector()).save(str(path))
    ext = fm.TorchScriptInception(path)
    f = ext(torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1).expand(2, 1, 4, 4))
    np.testing.assert_allclose(f, [[0, 0, 0], [255, 255, 255]])
    with pytest.raises(LatentmedError, match="inception-2015-12-05.pt"):
        fm.TorchScriptInception(tmp_path / "missing.pt")
