"""Image similarity metrics for reconstructions: PSNR and SSIM, 2D and 3D.

Images are batches ``[B, C, H, W]`` (2D) or ``[B, C, D, H, W]`` (3D) on the range given by
``data_range``; the toolkit's images live in [-1, 1], hence the default ``data_range=2``.
Functions return per-sample values ``[B]``; the classes accumulate them (and reduce across DDP
ranks, see :mod:`latentmed.metrics._base`). Feature-based metrics are in
:mod:`latentmed.metrics.fid` and :mod:`latentmed.metrics.lpips`.

Argument order is (reference, image) like scikit-image; PSNR and SSIM are symmetric anyway.
"""

from __future__ import annotations

from typing import Any

import torch

from latentmed.errors import LatentmedError
from latentmed.metrics._base import PerSampleMean, as_tensor

__all__ = ["image_pair", "psnr", "ssim", "PSNR", "SSIM"]


def image_pair(reference: Any, image: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Two image batches of one shape ``[B, C, *spatial]`` (2D or 3D) as tensors of one float dtype."""
    x = as_tensor(reference, "reference")
    y = as_tensor(image, "image")
    if x.shape != y.shape:
        raise LatentmedError(f"reference has shape {tuple(x.shape)} but image has shape {tuple(y.shape)}; "
                             "they must match.")
    if x.ndim not in (4, 5):
        raise LatentmedError(
            f"images of shape {tuple(x.shape)}: expected a batch [B, C, H, W] (2D) or [B, C, D, H, W] (3D). "
            "Add the missing axes, e.g. image[None, None] for one grayscale image.")
    if not x.is_floating_point():
        x = x.double()
    if not y.is_floating_point():
        y = y.double()
    dtype = torch.promote_types(x.dtype, y.dtype)
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    return x.to(dtype), y.to(device=x.device, dtype=dtype)


def psnr(reference: Any, image: Any, *, data_range: float = 2.0) -> torch.Tensor:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` per sample, in dB.

    ``reference``/``image``: ``[B, C, *spatial]``; ``data_range`` is max - min of the image
    range (2 for [-1, 1], 1 for [0, 1], 255 for uint8). Identical images give ``inf``.
    Computed with torchmetrics' ``peak_signal_noise_ratio`` over all but the batch axis.
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio

    x, y = image_pair(reference, image)
    return peak_signal_noise_ratio(y, x, data_range=float(data_range), reduction="none",
                                   dim=tuple(range(1, x.ndim)))


def ssim(reference: Any, image: Any, *, data_range: float = 2.0, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al., 2004) per sample, 2D or 3D, Gaussian window.

    SSIM maps from torchmetrics' ``structural_similarity_index_measure`` (Gaussian window of
    ``2 * int(3.5 sigma + 0.5) + 1`` = 11 taps for sigma 1.5, K1 0.01, K2 0.03), averaged over
    the windows that lie inside the image, as in Wang et al.'s reference code and scikit-image
    (``structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=...)``, mean over channels), which it matches.
    torchmetrics' own mean also counts the reflect-padded border; that is why we crop it.
    Every spatial size must be at least the window size (use a smaller ``sigma`` for tiny volumes).
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    x, y = image_pair(reference, image)
    if not sigma > 0:
        raise LatentmedError(f"sigma={sigma}: expected a positive number.")
    win = int(3.5 * sigma + 0.5) * 2 + 1
    if min(x.shape[2:]) < win:
        raise LatentmedError(
            f"images of spatial size {tuple(x.shape[2:])} are smaller than the SSIM window {win} "
            f"(sigma={sigma}); pass a smaller sigma (e.g. sigma=1.0 gives a 7-tap window).")
    _, full = structural_similarity_index_measure(
        y, x, data_range=float(data_range), reduction="none", gaussian_kernel=True, sigma=sigma,
        kernel_size=win, return_full_image=True)
    pad = (win - 1) // 2
    inner = full[(slice(None), slice(None)) + (slice(pad, -pad),) * (x.ndim - 2)] if pad else full
    return inner.reshape(inner.shape[0], -1).mean(1)


class PSNR(PerSampleMean):
    """Accumulating :func:`psnr` (mean of per-sample dB values, as in the DiffAE/two-phase tables)."""

    higher_is_better = True

    def __init__(self, *, data_range: float = 2.0) -> None:
        super().__init__(psnr, data_range=data_range)


class SSIM(PerSampleMean):
    """Accumulating :func:`ssim` (mean of per-sample values)."""

    higher_is_better = True

    def __init__(self, *, data_range: float = 2.0, sigma: float = 1.5) -> None:
        super().__init__(ssim, data_range=data_range, sigma=sigma)
