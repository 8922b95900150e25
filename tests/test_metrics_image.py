"""Image metrics: PSNR/SSIM vs scikit-image, Frechet distance vs closed forms, FID, LPIPS code path, PPL."""

import numpy as np
import pytest
import torch
from torch import nn

from latentmed.errors import LatentmedError
from latentmed.metrics import image as im


def _pair(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
    y = (x + 0.2 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(-1, 1)
    return x, y


@pytest.mark.parametrize("shape", [(2, 1, 24, 20), (2, 3, 16, 16), (2, 1, 13, 14, 12)])
def test_psnr_ssim_match_skimage(shape):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    x, y = _pair(shape)
    p = im.psnr(x, y)
    s = im.ssim(x, y)
    assert p.shape == s.shape == (2,)
    for i in range(2):
        a, b = x[i].numpy(), y[i].numpy()
        np.testing.assert_allclose(p[i], peak_signal_noise_ratio(a, b, data_range=2.0), rtol=1e-6)
        ref = structural_similarity(a, b, data_range=2.0, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, channel_axis=0)
        np.testing.assert_allclose(s[i], ref, rtol=1e-4, atol=1e-5)
    # data range matters: images in [0, 1] with data_range=1 give the same PSNR
    np.testing.assert_allclose(im.psnr((x + 1) / 2, (y + 1) / 2, data_range=1.0), p, rtol=1e-6)
    acc = im.PSNR()
    acc.update(x[:1], y[:1])
    acc.update(x[1:], y[1:])
    np.testing.assert_allclose(acc.compute(), p.mean(), rtol=1e-6)


def test_image_bad_input():
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(LatentmedError, match="shape"):
        im.psnr(x, torch.zeros(1, 1, 8, 9))
    with pytest.raises(LatentmedError, match=r"\[B, C, H, W\]"):
        im.psnr(torch.zeros(8, 8), torch.zeros(8, 8))
    with pytest.raises(LatentmedError, match="sigma"):
        im.ssim(x, x)


def test_frechet_distance_closed_forms():
    # 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2
    d = im.frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[9.0]]))
    np.testing.assert_allclose(d, 9 + 1)
    # commuting (diagonal) covariances: ||mu1-mu2||^2 + sum (sqrt a - sqrt b)^2
    a, b = np.array([1.0, 2.0, 3.0]), np.array([0.5, 4.0, 3.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    d = im.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    np.testing.assert_allclose(d, 1 + 4 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum(), rtol=1e-10)
    # general SPD covariances: the pytorch-fid formula with scipy's sqrtm
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((6, 6)), rng.standard_normal((6, 6))
    s1, s2 = A @ A.T + 0.1 * np.eye(6), B @ B.T + 0.1 * np.eye(6)
    m1, m2 = rng.standard_normal(6), rng.standard_normal(6)
    ref = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
    np.testing.assert_allclose(im.frechet_distance(m1, s1, m2, s2), ref, rtol=1e-8)
    assert abs(float(im.frechet_distance(m1, s1, m1, s1))) < 1e-8
    with pytest.raises(LatentmedError, match="sigma2"):
        im.frechet_distance(m1, s1, m2, s2[:3, :3])


def test_fid_accumulates_like_the_formula():
    torch.manual_seed(0)
    extractor = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    real = torch.randn(40, 1, 8, 8)
    fake = torch.randn(30, 1, 8, 8) * 1.5 + 0.3
    fid = im.FID(extractor, batch_size=16)
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
    ext = im.TorchScriptInception(path)
    f = ext(torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1).expand(2, 1, 4, 4))
    np.testing.assert_allclose(f, [[0, 0, 0], [255, 255, 255]])
    with pytest.raises(LatentmedError, match="inception-2015-12-05.pt"):
        im.TorchScriptInception(tmp_path / "missing.pt")


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
    metric = im.LPIPS(backbone, w)
    x, y = _pair((3, 1, 12, 12))
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
    acc = im.MeanLPIPS(metric)
    acc.update(x, y)
    np.testing.assert_allclose(acc.compute(), ref.double().mean(), rtol=1e-5)


def test_lpips_from_files_loads_torchvision_layout(tmp_path):
    from latentmed.io import save_safetensors

    torch.manual_seed(0)
    feats = im._alexnet_features()
    save_safetensors(tmp_path / "alexnet.safetensors", {f"features.{k}": v for k, v in feats.state_dict().items()})
    lin = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}
    torch.save(lin, tmp_path / "alex.pth")
    metric = im.LPIPS.from_files("alex", tmp_path / "alexnet.safetensors", tmp_path / "alex.pth")
    x, y = _pair((2, 3, 64, 64))
    d = metric(x, y)
    assert d.shape == (2,) and torch.all(d > 0)
    with torch.no_grad():  # the taps are the torchvision layer indices 2, 5, 8, 10, 12
        h = feats[:2](((x.float() - metric.shift) / metric.scale))
    assert torch.allclose(metric.backbone(((x.float() - metric.shift) / metric.scale))[0], h)
    with pytest.raises(LatentmedError, match="download.pytorch.org"):
        im.LPIPS.from_files("alex", tmp_path / "nope.pth", tmp_path / "alex.pth")
    with pytest.raises(LatentmedError, match="weights not given"):
        im.LPIPS.from_files("vgg")


def test_perceptual_path_length():
    # identity "generator": PPL with the mse distance has a closed form on a great circle
    za, zb = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    n = 10
    ppl = im.perceptual_path_length(lambda z: z, za, zb, n=n, distance="mse")
    chord = 2 * np.sin(np.pi / 4 / n)  # distance between consecutive slerp points
    np.testing.assert_allclose(ppl, n * n * chord**2 / 2, rtol=1e-6)
    # batched pairs, custom distance, and the endpoints are reached
    seen = []
    batch = im.perceptual_path_length(lambda z: (seen.append(z), z)[1], torch.stack([za, za]),
                                      torch.stack([zb, 2 * zb]), n=4, distance=lambda a, b: (a - b).norm(dim=1))
    assert batch.shape == (2,) and batch[1] > batch[0]
    np.testing.assert_allclose(seen[0][-1], zb, atol=1e-6)
    with pytest.raises(LatentmedError, match="distance"):
        im.perceptual_path_length(lambda z: z, za, zb, distance="lpips")
    # tuples of codes (e.g. a DAE's (z_sem, x_T)) are slerped separately: with the mse distance the joint
    # PPL is the size-weighted mean of the parts' PPLs
    g = torch.Generator().manual_seed(0)
    z1a, z1b, x1a, x1b = (torch.randn(s, generator=g) for s in ((2, 3), (2, 3), (2, 1, 2, 2), (2, 1, 2, 2)))
    joint = im.perceptual_path_length(lambda c: torch.cat([c[0], c[1].flatten(1)], 1), (z1a, x1a), (z1b, x1b), n=5)
    p_z = im.perceptual_path_length(lambda z: z, z1a, z1b, n=5)
    p_x = im.perceptual_path_length(lambda x: x, x1a, x1b, n=5)
    np.testing.assert_allclose(joint, (3 * p_z + 4 * p_x) / 7, rtol=1e-5)
