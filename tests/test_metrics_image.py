"""Image metrics: PSNR/SSIM against scikit-image."""

import numpy as np
import pytest
import torch

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
