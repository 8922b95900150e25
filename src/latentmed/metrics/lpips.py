"""LPIPS (Zhang et al., CVPR 2018) from local weight files, with the AlexNet/VGG16 feature stacks rebuilt.

torchvision and the ``lpips`` package are unavailable here (no CPU torchvision build), so the two
ImageNet backbones are rebuilt with torchvision's layer indices and loaded from local state_dicts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from latentmed.errors import LatentmedError
from latentmed.metrics._base import PerSampleMean, as_tensor
from latentmed.metrics.image import image_pair

__all__ = ["LPIPS", "MeanLPIPS", "TappedFeatures"]


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
        x, y = image_pair(x, y)
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

    higher_is_better = False

    def __init__(self, model: LPIPS) -> None:
        super().__init__(torch.no_grad()(model.__call__))
        self.model = model  # a submodule, so that metric.to(device) moves it
