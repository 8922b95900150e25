"""Supervised baseline for the grading table: a CNN trained end to end on the images.

The papers compare with a DenseNet121 (``arch="densenet121"``, MONAI); the default ``arch="small"``
is the 4-layer :class:`~latentmed.nn.classifier.SmallCNN` that trains in a minute on CPU
(:func:`latentmed.train.classifier.fit_classifier`). The network classifies the grade
(cross-entropy over the ordinal scale); its detection score is P(positive grades).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from latentmed.errors import expect


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

    from latentmed.train.classifier import fit_classifier, predict_logits

    xtr = torch.as_tensor(np.asarray(train_images), dtype=torch.float32)
    xte = torch.as_tensor(np.asarray(test_images), dtype=torch.float32)
    expect(xtr.ndim == 4 and xte.ndim == 4 and xtr.shape[1:] == xte.shape[1:],
           f"train/test images must be [N, C, H, W] of one shape; got {tuple(xtr.shape)} and {tuple(xte.shape)}.")
    y = np.asarray(train_grades).astype(int)
    expect(len(y) == len(xtr), f"{len(y)} grades for {len(xtr)} training images.")
    scale = np.arange(y.min(), y.max() + 1) if scale is None else np.asarray(sorted(scale), dtype=int)
    expect(np.isin(y, scale).all(), f"training grades {np.unique(y).tolist()} are not all in the scale {scale.tolist()}.")
    expect(len(np.unique(y)) >= 2, f"only one class ({np.unique(y).tolist()}) in the baseline's training grades.")
    target = np.searchsorted(scale, y)
    counts = np.bincount(target, minlength=len(scale)).astype(np.float64)
    weight = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(scale), 0.0) if balanced else None
    net = fit_classifier(xtr, target, arch=arch, epochs=epochs, batch_size=batch_size, lr=lr,
                         weight_decay=weight_decay, num_outputs=len(scale), class_weight=weight, seed=seed,
                         device=device, progress=progress)
    probs = predict_logits(net, xte, device=device).softmax(-1).numpy()
    return BaselinePredictions(scale=scale, probabilities=probs, predicted=scale[probs.argmax(1)],
                               positive=tuple(int(g) for g in positive))
