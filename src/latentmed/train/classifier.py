"""Supervised training of the small image classifiers of the baselines, on tensors held in memory.

One loop for the grading baseline (one grade per image, cross-entropy, optionally class-weighted)
and the augmentation experiments (several binary labels per image, BCE): AdamW, shuffled epochs,
constant or cosine learning rate. Seeded: same seed, same network and same result on the CPU.
The diffusion models train with :func:`latentmed.train.train` instead (checkpoints, EMA, DDP),
which a one-minute baseline trained once per fold does not need.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from latentmed.errors import expect
from latentmed.nn.classifier import build_classifier
from latentmed.runtime import seed_everything


def fit_classifier(x: torch.Tensor, target, *, arch: str = "small", epochs: int = 30, min_steps: int = 0,
                   batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 0.0, cosine: bool = False,
                   num_outputs: int | None = None, class_weight=None, seed: int = 0, device: str = "cpu",
                   progress: bool = False) -> nn.Module:
    """Train a :func:`~latentmed.nn.classifier.build_classifier` net on ``x [N, C, H, W]``; return it in eval mode.

    ``target``: class indices ``[N]`` (cross-entropy, ``class_weight`` per class; ``num_outputs``
    classes, default the largest index + 1) or binary labels ``[N, L]`` (multi-label BCE).
    Training runs shuffled epochs of ``batch_size`` (the last batch of an epoch may be smaller; one
    of a single image is skipped, as BatchNorm needs two), at least ``epochs`` of them and at least
    ``min_steps`` optimizer steps; the learning rate is constant or, with ``cosine``, annealed to 0
    over those steps.
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    target = torch.as_tensor(np.asarray(target))
    expect(x.ndim == 4, f"images: expected [N, C, H, W], got shape {tuple(x.shape)}.")
    expect(len(target) == len(x), f"{len(target)} targets for {len(x)} images; expected one per image.")
    expect(len(x) >= 2, f"{len(x)} training image(s): the classifier needs at least 2.")
    expect(target.ndim in (1, 2), f"targets: expected class indices [N] or labels [N, L], got {tuple(target.shape)}.")
    multilabel = target.ndim == 2
    target = target.float() if multilabel else target.long()
    n_out = num_outputs or (target.shape[1] if multilabel else int(target.max()) + 1)
    if class_weight is not None:
        class_weight = torch.as_tensor(class_weight, dtype=torch.float32, device=device)
    seed_everything(seed)  # the initial weights
    net = build_classifier(arch, x.shape[1], n_out).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    per_epoch = math.ceil(len(x) / batch_size)
    n_epochs = max(int(epochs), math.ceil(min_steps / per_epoch))
    total = n_epochs * per_epoch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total) if cosine else None
    gen = torch.Generator().manual_seed(seed)
    epochs_iter = range(n_epochs)
    if progress:
        from tqdm.auto import tqdm

        epochs_iter = tqdm(epochs_iter, desc=f"classifier ({arch})", unit="epoch")
    net.train()
    for _ in epochs_iter:
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            if len(idx) < 2:
                continue
            logits, y = net(x[idx].to(device)), target[idx].to(device)
            loss = F.binary_cross_entropy_with_logits(logits, y) if multilabel else \
                F.cross_entropy(logits, y, weight=class_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
    return net.eval()


@torch.no_grad()
def predict_logits(net: nn.Module, x: torch.Tensor, *, batch_size: int = 256, device: str = "cpu") -> torch.Tensor:
    """Logits ``[N, outputs]`` (on the CPU) of ``net`` in eval mode, ``batch_size`` images at a time."""
    x = torch.as_tensor(x, dtype=torch.float32)
    net.eval()
    return torch.cat([net(chunk.to(device)).float().cpu() for chunk in x.split(batch_size)])


__all__ = ["fit_classifier", "predict_logits"]
