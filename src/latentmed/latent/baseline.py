"""Supervised baseline for the grading table: a CNN trained end to end on the images.

The papers compare with a DenseNet121 (MONAI's ``DenseNet121(spatial_dims=2, ...)`` here,
``arch="densenet121"``); the default ``arch="small"`` is a 4-layer CNN that trains in a minute on CPU.
The network classifies the grade (cross-entropy over the ordinal scale); its detection score is
P(positive grades).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from latentmed.errors import LatentmedError, expect
from latentmed.runtime import seed_everything

ARCHS = ("small", "densenet121")


def build_cnn(arch: str, in_channels: int, num_classes: int):
    """``small``: conv(16,32,64,64, stride 2)+GroupNorm+SiLU, global pool, linear; or MONAI DenseNet121 2D."""
    from torch import nn

    if arch == "densenet121":
        from monai.networks.nets import DenseNet121

        return DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=num_classes)
    if arch != "small":
        raise LatentmedError(f"unknown baseline arch {arch!r}; use one of {ARCHS}.")
    layers, c = [], in_channels
    for width in (16, 32, 64, 64):
        layers += [nn.Conv2d(c, width, 3, stride=2, padding=1), nn.GroupNorm(8, width), nn.SiLU()]
        c = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(c, num_classes))


@dataclasses.dataclass
class BaselinePredictions:
    """Test-set output of the CNN: class probabilities over ``scale``, predicted grade, detection score."""

    scale: np.ndarray
    probabilities: np.ndarray
    predicted: np.ndarray
    positive: tuple

    @property
    def detection_score(self) -> np.ndarray:
        return self.probabilities[:, np.isin(self.scale, self.positive)].sum(axis=1)


def train_cnn_baseline(train_images, train_grades, test_images, *, positive: Sequence[int], arch: str = "small",
                       scale: Sequence[int] | None = None, epochs: int = 30, batch_size: int = 32, lr: float = 1e-3,
                       weight_decay: float = 1e-4, balanced: bool = True, seed: int = 0, device: str = "cpu",
                       progress: bool = False) -> BaselinePredictions:
    """Train a CNN grade classifier on ``train_images`` ``[N, C, H, W]`` in [-1, 1]; predict ``test_images``.

    ``balanced`` weighs the cross-entropy by inverse class frequency (fracture grades are rare).
    Deterministic for a given ``seed`` on CPU.
    """
    import torch

    xtr = torch.as_tensor(np.asarray(train_images), dtype=torch.float32)
    xte = torch.as_tensor(np.asarray(test_images), dtype=torch.float32)
    expect(xtr.ndim == 4 and xte.ndim == 4 and xtr.shape[1:] == xte.shape[1:],
           f"train/test images must be [N, C, H, W] of one shape; got {tuple(xtr.shape)} and {tuple(xte.shape)}.")
    y = np.asarray(train_grades).astype(int)
    expect(len(y) == len(xtr), f"{len(y)} grades for {len(xtr)} training images.")
    scale = np.arange(y.min(), y.max() + 1) if scale is None else np.asarray(sorted(scale), dtype=int)
    expect(np.isin(y, scale).all(), f"training grades {np.unique(y).tolist()} are not all in the scale {scale.tolist()}.")
    expect(len(np.unique(y)) >= 2, f"only one class ({np.unique(y).tolist()}) in the baseline's training grades.")
    target = torch.as_tensor(np.searchsorted(scale, y))
    seed_everything(seed)
    net = build_cnn(arch, xtr.shape[1], len(scale)).to(device)
    counts = np.bincount(target.numpy(), minlength=len(scale)).astype(np.float64)
    weight = (torch.as_tensor(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(scale), 0.0),
                              dtype=torch.float32, device=device) if balanced else None)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    epochs_iter = range(int(epochs))
    if progress:
        from tqdm import tqdm

        epochs_iter = tqdm(epochs_iter, desc=f"CNN baseline ({arch})", unit="epoch")
    net.train()
    for _ in epochs_iter:
        order = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            loss = torch.nn.functional.cross_entropy(net(xtr[idx].to(device)), target[idx].to(device), weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        probs = torch.cat([net(xte[i:i + 256].to(device)).softmax(-1).cpu() for i in range(0, len(xte), 256)]).numpy()
    return BaselinePredictions(scale=scale, probabilities=probs, predicted=scale[probs.argmax(1)],
                               positive=tuple(int(g) for g in positive))
