"""Image metrics for reconstruction and generation: PSNR, SSIM, FID, LPIPS, perceptual path length.

Images are batches ``[B, C, H, W]`` (2D) or ``[B, C, D, H, W]`` (3D) on the range given by
``data_range``; the toolkit's images live in [-1, 1], hence the default ``data_range=2``.
Functions return per-sample values ``[B]``; the classes accumulate them.

Argument order is (reference, image) like scikit-image; PSNR and SSIM are symmetric anyway.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from latentmed.diffusion.interpolation import slerp
from latentmed.errors import LatentmedError
from latentmed.metrics._base import PerSampleMean, as_tensor

__all__ = [
    "psnr",
    "ssim",
    "PSNR",
    "SSIM",
    "frechet_distance",
    "feature_statistics",
    "FID",
    "TorchScriptInception",
    "LPIPS",
    "MeanLPIPS",
    "perceptual_path_length",
]


def _images(reference: Any, image: Any) -> tuple[torch.Tensor, torch.Tensor]:
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

    x, y = _images(reference, image)
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

    x, y = _images(reference, image)
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

    def __init__(self, *, data_range: float = 2.0) -> None:
        super().__init__(psnr, data_range=data_range)


class SSIM(PerSampleMean):
    """Accumulating :func:`ssim` (mean of per-sample values)."""

    def __init__(self, *, data_range: float = 2.0, sigma: float = 1.5) -> None:
        super().__init__(ssim, data_range=data_range, sigma=sigma)


# --------------------------------------------------------------------------------------- FID
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


class FID:
    """Frechet distance between features of real and generated images, with any feature extractor.

    ``feature_extractor`` is any ``nn.Module`` (or callable) mapping an image batch to features
    ``[B, F]`` (extra trailing axes of size 1 are flattened): e.g. our own DAE's semantic
    encoder (``dae.encode``), a domain-specific network (the DiNO-Diffusion paper argues this
    suits medical images better than Inception), or :class:`TorchScriptInception` for the
    classic Inception-v3 FID from a local weights file. Scores are only comparable between
    runs that use the same extractor; always report which one.

    Statistics are accumulated in float64 as sums (no feature storage), the covariance is the
    unbiased one (as pytorch-fid, TF FID and torchmetrics), see :func:`frechet_distance`.

    >>> fid = FID(dae.encode)                         # doctest: +SKIP
    >>> fid.update(real_images, real=True); fid.update(samples, real=False); fid.compute()  # doctest: +SKIP
    """

    def __init__(self, feature_extractor: Callable[[torch.Tensor], torch.Tensor], *,
                 batch_size: int = 64) -> None:
        if not callable(feature_extractor):
            raise LatentmedError(f"feature_extractor: expected an nn.Module or callable, got "
                                 f"{type(feature_extractor).__name__}.")
        self.feature_extractor = feature_extractor
        self.batch_size = int(batch_size)
        self.reset()

    def reset(self) -> None:
        """Forget both feature sets."""
        self._stats: dict[bool, list] = {True: [0, None, None], False: [0, None, None]}

    def reset_generated(self) -> None:
        """Forget the generated images only (keep the real statistics, e.g. to score several samplers)."""
        self._stats[False] = [0, None, None]

    def _device(self) -> torch.device:
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
            f = self.feature_extractor(chunk.to(self._device()))
            if isinstance(f, (tuple, list)):
                f = f[0]
            out.append(f.reshape(f.shape[0], -1).double().cpu())
        return torch.cat(out)

    def update(self, images: Any, *, real: bool) -> None:
        """Add a batch of real (``real=True``) or generated (``real=False``) images."""
        self.update_features(self.features(images), real=real)

    def update_features(self, features: Any, *, real: bool) -> None:
        """Add precomputed features ``[B, F]``."""
        f = as_tensor(features, "features").double().cpu()
        if f.ndim != 2:
            raise LatentmedError(f"features of shape {tuple(f.shape)}: expected [B, F].")
        n, s, ss = self._stats[bool(real)]
        other = self._stats[not real][1]
        dim = f.shape[1]
        for ref in (s, other):
            if ref is not None and ref.shape[0] != dim:
                raise LatentmedError(f"features have {dim} dimensions but earlier ones had {ref.shape[0]}; "
                                     "use the same feature extractor for real and generated images.")
        self._stats[bool(real)] = [n + f.shape[0], f.sum(0) if s is None else s + f.sum(0),
                                   f.T @ f if ss is None else ss + f.T @ f]

    def _moments(self, real: bool) -> tuple[torch.Tensor, torch.Tensor]:
        n, s, ss = self._stats[real]
        if n < 2:
            raise LatentmedError(f"FID needs at least 2 {'real' if real else 'generated'} images, got {n}; "
                                 f"call update(images, real={real}) first.")
        mu = s / n
        return mu, (ss - n * torch.outer(mu, mu)) / (n - 1)

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


# ------------------------------------------------------------------------------------- LPIPS
# LPIPS (Zhang et al., 2018), v0.1: ImageNet scaling layer, unit-normalised features of five
# ReLU taps, squared difference, learned 1x1 weighting, spatial mean, sum over layers.
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)
# torchvision layouts (indices matter: they are the state_dict keys ``features.<i>.weight``)
_ALEX = {"cuts": (2, 5, 8, 10, 12), "channels": (64, 192, 384, 256, 256)}
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_VGG = {"cuts": (4, 9, 16, 23, 30), "channels": (64, 128, 256, 512, 512)}
_HOW_TO_GET_LPIPS = (
    "LPIPS needs two local files (nothing is downloaded): (1) the ImageNet backbone, torchvision's "
    "alexnet-owt-7be5be79.pth (https://download.pytorch.org/models/alexnet-owt-7be5be79.pth) or "
    "vgg16-397923af.pth (https://download.pytorch.org/models/vgg16-397923af.pth); (2) the LPIPS v0.1 "
    "linear weights alex.pth / vgg.pth from https://github.com/richzhang/PerceptualSimilarity/tree/master/"
    "lpips/weights/v0.1 (also inside the `lpips` pip wheel). Pass them as backbone_path= and lin_path=.")


def _alexnet_features() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU())


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    c = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    return nn.Sequential(*layers)


class TappedFeatures(nn.Module):
    """Run ``features`` (an ``nn.Sequential``) and return the activations after each cut index."""

    def __init__(self, features: nn.Sequential, cuts: Sequence[int]) -> None:
        super().__init__()
        self.features = features
        self.cuts = tuple(int(c) for c in cuts)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, start = [], 0
        for cut in self.cuts:
            for layer in self.features[start:cut]:
                x = layer(x)
            out.append(x)
            start = cut
        return out


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise LatentmedError(f"{path}: LPIPS weights file not found. {_HOW_TO_GET_LPIPS}")
    if path.suffix == ".safetensors":
        from latentmed.io import load_safetensors

        return load_safetensors(path)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise LatentmedError(f"{path}: cannot read it as a state_dict with weights_only=True ({exc}).") from exc
    if not isinstance(state, dict):
        raise LatentmedError(f"{path}: expected a state_dict, got {type(state).__name__}.")
    return state


class LPIPS(nn.Module):
    """Learned Perceptual Image Patch Similarity (Zhang et al., CVPR 2018), LPIPS v0.1.

    ``LPIPS(backbone, lin_weights)`` works with any backbone returning a list of feature maps
    (``lin_weights``: one ``[C_l]`` tensor per map; ``None`` gives the unlearned baseline with
    all weights 1). ``LPIPS.from_files("alex", backbone_path, lin_path)`` builds the published
    metric from local files (see the error message for where to get them); it reproduces the
    ``lpips`` package's ``LPIPS(net='alex', version='0.1')`` computation. Inputs are
    ``[B, 1 or 3, H, W]`` in [-1, 1] (grayscale is repeated to RGB); returns ``[B]``.

    Not tested here: agreement with the ``lpips`` package and real weights (neither
    torchvision nor the weights are available on this machine); the computation is tested
    against a hand-written formula with a backbone built by the test.
    """

    def __init__(self, backbone: nn.Module, lin_weights: Sequence[torch.Tensor] | None = None, *,
                 n_layers: int | None = None, imagenet_scaling: bool = True) -> None:
        super().__init__()
        self.backbone = backbone.eval()
        if lin_weights is None:
            if n_layers is None:
                raise LatentmedError("LPIPS without lin_weights needs n_layers (the number of feature maps).")
            self.lin = None
            self.n_layers = int(n_layers)
        else:
            weights = [as_tensor(w, f"lin_weights[{i}]").float().reshape(-1) for i, w in enumerate(lin_weights)]
            self.lin = nn.ParameterList([nn.Parameter(w, requires_grad=False) for w in weights])
            self.n_layers = len(weights)
        self.imagenet_scaling = imagenet_scaling
        self.register_buffer("shift", torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        for p in self.backbone.parameters():
            p.requires_grad_(False)

    @classmethod
    def from_files(cls, net: str = "alex", backbone_path: str | os.PathLike | None = None,
                   lin_path: str | os.PathLike | None = None) -> "LPIPS":
        """Build the published LPIPS (``net`` = ``alex`` or ``vgg``) from local weight files.

        ``backbone_path``: torchvision ImageNet state_dict (``.pth``, loaded with
        ``weights_only=True``, or ``.safetensors``), keys ``features.<i>.weight`` (a bare
        ``<i>.weight`` features dict works too). ``lin_path``: the LPIPS v0.1 file with keys
        ``lin<l>.model.1.weight`` of shape ``[1, C_l, 1, 1]``.
        """
        if net not in ("alex", "vgg"):
            raise LatentmedError(f"net={net!r}: expected 'alex' or 'vgg'.")
        if backbone_path is None or lin_path is None:
            raise LatentmedError(f"LPIPS({net}): weights not given. {_HOW_TO_GET_LPIPS}")
        features = _alexnet_features() if net == "alex" else _vgg16_features()
        spec = _ALEX if net == "alex" else _VGG
        state = _load_state(Path(backbone_path))
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")} or state
        expected = set(features.state_dict())
        missing = expected - set(feats)
        if missing:
            raise LatentmedError(f"{backbone_path}: not a torchvision {net} state_dict (missing "
                                 f"{sorted(missing)[:4]}...). {_HOW_TO_GET_LPIPS}")
        features.load_state_dict({k: feats[k] for k in expected})
        lin_state = _load_state(Path(lin_path))
        weights = []
        for i, c in enumerate(spec["channels"]):
            key = f"lin{i}.model.1.weight"
            if key not in lin_state or lin_state[key].numel() != c:
                raise LatentmedError(f"{lin_path}: expected key {key} with {c} values for LPIPS({net}). "
                                     f"{_HOW_TO_GET_LPIPS}")
            weights.append(lin_state[key])
        return cls(TappedFeatures(features, spec["cuts"]), weights)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = _images(x, y)
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise LatentmedError(f"LPIPS takes 2D images [B, 1 or 3, H, W]; got {tuple(x.shape)}. "
                                 "For 3D volumes, evaluate slices.")
        dev = self.shift.device
        x, y = x.to(dev, torch.float32), y.to(dev, torch.float32)
        if x.shape[1] == 1:
            x, y = x.repeat(1, 3, 1, 1), y.repeat(1, 3, 1, 1)
        if self.imagenet_scaling:
            x, y = (x - self.shift) / self.scale, (y - self.shift) / self.scale
        fx, fy = self.backbone(x), self.backbone(y)
        if len(fx) != self.n_layers:
            raise LatentmedError(f"backbone returned {len(fx)} feature maps but LPIPS has {self.n_layers} weights.")
        total = torch.zeros(x.shape[0], device=dev)
        for i, (a, b) in enumerate(zip(fx, fy)):
            a = a / (a.square().sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.square().sum(1, keepdim=True).sqrt() + 1e-10)
            d = (a - b).square()
            if self.lin is not None:
                w = self.lin[i]
                if w.numel() != d.shape[1]:
                    raise LatentmedError(f"lin_weights[{i}] has {w.numel()} values but feature map {i} has "
                                         f"{d.shape[1]} channels.")
                d = (d * w.view(1, -1, 1, 1)).sum(1)
            else:
                d = d.sum(1)
            total = total + d.mean(dim=(-2, -1))
        return total


class MeanLPIPS(PerSampleMean):
    """Accumulating LPIPS: ``MeanLPIPS(lpips_model).update(reference, image)``, ``compute()`` -> mean."""

    def __init__(self, model: LPIPS) -> None:
        super().__init__(torch.no_grad()(model.__call__))


# --------------------------------------------------------------------------------------- PPL
def perceptual_path_length(generator_fn: Callable[..., torch.Tensor], z_a: Any, z_b: Any, *,
                           n: int = 100, distance: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "mse",
                           batch_size: int = 32) -> torch.Tensor:
    """Perceptual path length of the interpolation from ``z_a`` to ``z_b`` (two-phase paper, supplement).

    ``PPL = N * sum_{i=0}^{N-1} d(G(slerp(z_a, z_b, i/N)), G(slerp(z_a, z_b, (i+1)/N)))``.

    Args:
        generator_fn: maps codes ``[M, ...]`` to images ``[M, C, ...]``; must be deterministic.
        z_a, z_b: one pair of codes ``[d]``, a batch of pairs ``[B, ...]``, or tuples of batched
            codes slerped separately and passed to ``generator_fn`` as a tuple, e.g.
            ``(z_sem, x_T)`` of a DAE with ``generator_fn = lambda c: dae.decode(c[0], c[1])``.
        n: number of segments N (the paper uses 100).
        distance: callable ``d(x, y) -> [M]`` (e.g. an :class:`LPIPS` module, as in the paper)
            or ``"mse"`` / ``"l1"`` (mean over pixels).
        batch_size: images decoded per ``generator_fn`` call.

    Returns:
        0-d tensor for one pair ``[d]``, ``[B]`` for a batch of pairs.
    """

    is_tuple = isinstance(z_a, (tuple, list))
    parts_a = [as_tensor(v, "z_a") for v in (z_a if is_tuple else [z_a])]
    parts_b = [as_tensor(v, "z_b") for v in (z_b if is_tuple else [z_b])]
    if len(parts_a) != len(parts_b) or any(a.shape != b.shape for a, b in zip(parts_a, parts_b)):
        raise LatentmedError(f"z_a and z_b must have the same shapes, got {[tuple(a.shape) for a in parts_a]} and "
                             f"{[tuple(b.shape) for b in parts_b]}.")
    if int(n) < 1:
        raise LatentmedError(f"n={n}: expected at least 1 segment.")
    single = not is_tuple and parts_a[0].ndim == 1
    if single:
        parts_a, parts_b = [parts_a[0][None]], [parts_b[0][None]]
    if len({a.shape[0] for a in parts_a}) != 1:
        raise LatentmedError("the codes in z_a must all have the same batch size (one row per pair).")
    if isinstance(distance, str):
        if distance not in ("mse", "l1"):
            raise LatentmedError(f"distance={distance!r}: expected 'mse', 'l1' or a callable (e.g. LPIPS).")
        power = 2 if distance == "mse" else 1
        dist = lambda x, y: (x - y).abs().pow(power).flatten(1).mean(1)  # noqa: E731
    elif callable(distance):
        dist = distance
    else:
        raise LatentmedError(f"distance: expected a string or callable, got {type(distance).__name__}.")
    ws = torch.linspace(0, 1, int(n) + 1, dtype=torch.float64).tolist()
    results = []
    with torch.no_grad():
        for i in range(parts_a[0].shape[0]):
            codes = [torch.cat([slerp(a[i:i + 1].double(), b[i:i + 1].double(), w) for w in ws]).to(a.dtype)
                     for a, b in zip(parts_a, parts_b)]
            chunks = zip(*[c.split(batch_size) for c in codes])
            images = torch.cat([generator_fn(tuple(ch) if is_tuple else ch[0]) for ch in chunks])
            d = torch.cat([dist(x, y).reshape(-1) for x, y in zip(images[:-1].split(batch_size),
                                                                 images[1:].split(batch_size))])
            results.append(int(n) * d.double().sum())
    out = torch.stack(results)
    return out[0] if single else out
