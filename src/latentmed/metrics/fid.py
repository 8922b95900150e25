"""Frechet Inception Distance with any feature extractor, and the Inception-v3 extractor from a local file.

FID (Heusel et al., NeurIPS 2017) is the Frechet distance between Gaussians fitted to the
features of real and of generated images. :class:`FID` accumulates the moments as sums (float64
``"sum"`` states, so they add up across DDP ranks); :func:`frechet_distance` and
:func:`feature_statistics` are the functional forms.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from latentmed.errors import LatentmedError
from latentmed.metrics._base import AccumulatingMetric, as_tensor

__all__ = ["feature_statistics", "frechet_distance", "FID", "TorchScriptInception"]


def feature_statistics(features: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance (``np.cov``, divisor N-1) of features ``[N, F]``, float64."""
    f = as_tensor(features, "features").double()
    if f.ndim != 2 or f.shape[0] < 2:
        raise LatentmedError(f"features of shape {tuple(f.shape)}: expected [N, F] with N >= 2.")
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> torch.Tensor:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (Dowson & Landau, 1982).

    ``||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2})``, in float64; the trace of
    the matrix square root is the sum of square roots of the eigenvalues of ``sigma1 sigma2``
    (as torchmetrics >= 1.0; pytorch-fid's ``scipy.linalg.sqrtm`` gives the same value to
    numerical precision). Returns a 0-d tensor.
    """
    m1, m2 = as_tensor(mu1, "mu1").double(), as_tensor(mu2, "mu2").double()
    s1, s2 = as_tensor(sigma1, "sigma1").double(), as_tensor(sigma2, "sigma2").double()
    f = m1.shape[-1] if m1.ndim == 1 else -1
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        if s.shape != (f, f):
            raise LatentmedError(f"{name} has shape {tuple(s.shape)}; expected ({f}, {f}) to match mu1 "
                                 f"of shape {tuple(m1.shape)}.")
    if m2.shape != m1.shape:
        raise LatentmedError(f"mu1 has shape {tuple(m1.shape)} but mu2 has {tuple(m2.shape)}.")
    s2 = s2.to(s1.device)
    m2 = m2.to(m1.device)
    tr_sqrt = torch.linalg.eigvals(s1 @ s2).sqrt().real.sum()
    return (m1 - m2).square().sum() + torch.trace(s1) + torch.trace(s2) - 2 * tr_sqrt


class FID(AccumulatingMetric):
    """Frechet distance between features of real and generated images, with any feature extractor.

    ``feature_extractor`` is any ``nn.Module`` (or callable) mapping an image batch to features
    ``[B, F]`` (extra trailing axes of size 1 are flattened): e.g. our own DAE's semantic
    encoder (``dae.encode``), a domain-specific network (the DiNO-Diffusion paper argues this
    suits medical images better than Inception), or :class:`TorchScriptInception` for the
    classic Inception-v3 FID from a local weights file. Scores are only comparable between
    runs that use the same extractor; always report which one.

    Statistics are accumulated in float64 as sums (no feature storage): the count, the sum and
    the sum of outer products of each set, torchmetrics ``"sum"`` states that add up across DDP
    ranks. The covariance is the unbiased one (as pytorch-fid, TF FID and torchmetrics), see
    :func:`frechet_distance`. ``num_features`` fixes the feature size up front; without it the
    first batch sets it (then every rank must see real and generated images before ``compute``).

    >>> fid = FID(dae.encode)                         # doctest: +SKIP
    >>> fid.update(real_images, real=True); fid.update(samples, real=False); fid.compute()  # doctest: +SKIP
    """

    higher_is_better = False
    _SETS = {True: "real", False: "generated"}

    def __init__(self, feature_extractor: Callable[[torch.Tensor], torch.Tensor], *,
                 batch_size: int = 64, num_features: int | None = None) -> None:
        super().__init__()
        if not callable(feature_extractor):
            raise LatentmedError(f"feature_extractor: expected an nn.Module or callable, got "
                                 f"{type(feature_extractor).__name__}.")
        self.feature_extractor = feature_extractor
        self.batch_size = int(batch_size)
        f = () if num_features is None else (int(num_features),)
        for which in self._SETS.values():
            self.add_state(f"{which}_n", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{which}_sum", default=torch.zeros(f, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{which}_outer", default=torch.zeros(f + f, dtype=torch.float64), dist_reduce_fx="sum")

    def reset_generated(self) -> None:
        """Forget the generated images only (keep the real statistics, e.g. to score several samplers)."""
        for suffix in ("n", "sum", "outer"):
            name = f"generated_{suffix}"
            setattr(self, name, self._defaults[name].clone().to(getattr(self, name).device))
        self._computed = None

    def _extractor_device(self) -> torch.device:
        if isinstance(self.feature_extractor, nn.Module):
            for p in self.feature_extractor.parameters():
                return p.device
        return torch.device("cpu")

    @torch.no_grad()
    def features(self, images: Any) -> torch.Tensor:
        """Features ``[B, F]`` of an image batch, computed in chunks of ``batch_size``."""
        x = as_tensor(images, "images")
        out = []
        for chunk in x.split(self.batch_size):
            f = self.feature_extractor(chunk.to(self._extractor_device()))
            if isinstance(f, (tuple, list)):
                f = f[0]
            out.append(f.reshape(f.shape[0], -1).double().cpu())
        return torch.cat(out)

    def update(self, images: Any, *, real: bool) -> None:
        """Add a batch of real (``real=True``) or generated (``real=False``) images."""
        self._add(self.features(images), bool(real))

    def update_features(self, features: Any, *, real: bool) -> None:
        """Add precomputed features ``[B, F]`` (counts as an ``update``)."""
        self._computed = None
        self._update_count += 1
        self._add(as_tensor(features, "features"), bool(real))

    def _add(self, f: torch.Tensor, real: bool) -> None:
        which = self._SETS[real]
        total = getattr(self, f"{which}_sum")
        f = f.detach().to(total.device, torch.float64)
        if f.ndim != 2:
            raise LatentmedError(f"features of shape {tuple(f.shape)}: expected [B, F].")
        for ref in (self.real_sum, self.generated_sum):
            if ref.ndim == 1 and ref.shape[0] != f.shape[1]:
                raise LatentmedError(f"features have {f.shape[1]} dimensions but earlier ones (or num_features) "
                                     f"had {ref.shape[0]}; use the same feature extractor for real and "
                                     "generated images.")
        setattr(self, f"{which}_n", getattr(self, f"{which}_n") + f.shape[0])
        setattr(self, f"{which}_sum", total + f.sum(0))
        setattr(self, f"{which}_outer", getattr(self, f"{which}_outer") + f.T @ f)

    def _moments(self, real: bool) -> tuple[torch.Tensor, torch.Tensor]:
        which = self._SETS[real]
        n = int(getattr(self, f"{which}_n"))
        if n < 2:
            raise LatentmedError(f"FID needs at least 2 {which} images, got {n}; "
                                 f"call update(images, real={real}) first.")
        mu = getattr(self, f"{which}_sum") / n
        return mu, (getattr(self, f"{which}_outer") - n * torch.outer(mu, mu)) / (n - 1)

    def compute(self) -> torch.Tensor:
        """The Frechet distance between the two accumulated feature distributions (0-d tensor)."""
        return frechet_distance(*self._moments(True), *self._moments(False))


class TorchScriptInception(nn.Module):
    """Inception-v3 feature extractor from NVIDIA's TorchScript file (StyleGAN2-ADA/StyleGAN3 FID).

    The file ``inception-2015-12-05.pt`` (https://api.ngc.nvidia.com/v2/models/nvidia/research/
    stylegan3/versions/1/files/metrics/inception-2015-12-05.pkl is the pickled twin; the
    TorchScript one is at https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/
    metrics/inception-2015-12-05.pt) is the original TensorFlow FID graph ported to TorchScript;
    StyleGAN2-ADA reports that FIDs computed with it match the TF reference implementation.
    Download it on a machine with internet and pass its local path. It is called as
    ``detector(uint8 images [B, 3, H, W], return_features=True) -> [B, 2048]`` and resizes to
    299 itself. TorchScript files contain code: load only the file you downloaded from NVIDIA.

    This wrapper maps images in [-1, 1] (``value_range``) to uint8 and grayscale to RGB.
    torchmetrics' ``FrechetInceptionDistance`` needs torch-fidelity, which needs torchvision
    (unavailable on this machine), so it is not used here.
    """

    def __init__(self, path: str | os.PathLike, *, value_range: tuple[float, float] = (-1.0, 1.0)) -> None:
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise LatentmedError(
                f"{path}: Inception weights not found. Download inception-2015-12-05.pt from "
                "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt "
                "on a machine with internet and pass its local path, or use FID with another feature "
                "extractor (e.g. the DAE's semantic encoder).")
        try:
            self.detector = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise LatentmedError(f"{path}: not a TorchScript file ({exc}). Expected NVIDIA's "
                                 "inception-2015-12-05.pt (the .pkl variant is not supported: no pickles).") from exc
        self.value_range = value_range

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise LatentmedError(f"images of shape {tuple(images.shape)}: expected [B, 1 or 3, H, W].")
        lo, hi = self.value_range
        x = ((images.float() - lo) / (hi - lo) * 255).round().clamp(0, 255).to(torch.uint8)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return self.detector(x, return_features=True)
