"""Supervised training of the small image classifiers of the baselines, on tensors held in memory.

One loop for the grading baseline (one grade per image, cross-entropy, optionally class-weighted)
and the augmentation experiments (several binary labels per image, BCE): AdamW, shuffled epochs,
constant or cosine learning rate. Seeded: same seed, same network and same result on the CPU.
The diffusion models train with :func:`latentmed.train.train` instead (checkpoints, EMA, DDP),
which a one-minute baseline trained once per fold does not need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    for _ in epochs_iter:
        _train_epoch(net, opt, x, target, batch_size, gen, device, class_weight, sched)
    return net.eval()


def _train_epoch(net: nn.Module, opt, x: torch.Tensor, target: torch.Tensor, batch_size: int, gen: torch.Generator,
                 device: str, class_weight=None, step_sched=None) -> None:
    """One shuffled epoch (BCE for labels ``[N, L]``, else cross-entropy); ``step_sched`` steps per batch."""
    net.train()
    order = torch.randperm(len(x), generator=gen)
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        if len(idx) < 2:  # BatchNorm needs two
            continue
        logits, y = net(x[idx].to(device)), target[idx].to(device)
        loss = F.binary_cross_entropy_with_logits(logits, y) if target.ndim == 2 else \
            F.cross_entropy(logits, y, weight=class_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step_sched is not None:
            step_sched.step()


@dataclass
class EarlyStopping:
    """Learning rate on plateau and early stopping on the validation score (the DenseNet-121 recipe of
    DiNO-Diffusion Sec. 2.5; factor and patience as CheXNet's, Rajpurkar et al. 2017): at most
    ``max_epochs``; the learning rate times ``factor`` after ``plateau_patience`` epochs without a better
    score (``ReduceLROnPlateau``); stop after ``stop_patience``; the best epoch's weights are returned."""

    max_epochs: int = 150
    plateau_patience: int = 5
    stop_patience: int = 10
    factor: float = 0.1
    min_lr: float = 1e-7

    def __post_init__(self) -> None:
        expect(self.max_epochs >= 1 and self.plateau_patience >= 0 and self.stop_patience >= 1 and
               0 < self.factor < 1, f"early stopping needs max_epochs >= 1, plateau_patience >= 0, "
               f"stop_patience >= 1 and 0 < factor < 1, got {self}.")


def validation_score(net: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str = "cpu") -> tuple[float, str]:
    """``(score, name)``: the macro AUC over the labels of ``y [N, L]`` that have both classes in the split
    (``val_auc``), or minus the BCE (``-val_bce``) when none has (a split of a few images)."""
    from latentmed.metrics.classification import auc

    logits = predict_logits(net, x, device=device)
    both = [j for j in range(y.shape[1]) if 0 < float(y[:, j].sum()) < len(y)]
    if both:
        return float(np.mean([auc(y[:, j].numpy(), logits[:, j].numpy()) for j in both])), "val_auc"
    return -float(F.binary_cross_entropy_with_logits(logits, y.float())), "-val_bce"


def fit_classifier_early_stopping(x: torch.Tensor, target, val: tuple, *, arch: str = "densenet121",
                                  stopping: EarlyStopping | None = None, batch_size: int = 32, lr: float = 1e-3,
                                  seed: int = 0, device: str = "cpu") -> tuple[nn.Module, dict]:
    """Multi-label classifier on ``x [N, C, H, W]``, ``target [N, L]`` with Adam, the learning rate reduced on a
    plateau of the validation score on ``val = (x_val, y_val)`` (:func:`validation_score`) and early stopping
    (:class:`EarlyStopping`). Returns the best epoch's network (eval mode) and the history
    ``{"score", "lr", "best_epoch", "epochs", "monitor"}`` (one ``score``/``lr`` per epoch)."""
    stopping = stopping or EarlyStopping()
    x = torch.as_tensor(x, dtype=torch.float32)
    target = torch.as_tensor(np.asarray(target)).float()
    xv, yv = torch.as_tensor(val[0], dtype=torch.float32), torch.as_tensor(np.asarray(val[1])).float()
    expect(x.ndim == 4 and target.ndim == 2 and len(target) == len(x) >= 2,
           f"expected >= 2 images [N, C, H, W] and labels [N, L], got {tuple(x.shape)} and {tuple(target.shape)}.")
    expect(len(xv) == len(yv) >= 1 and yv.shape[1:] == target.shape[1:],
           f"validation split: expected images and labels [M, {target.shape[1]}], got {len(xv)} images and labels "
           f"{tuple(yv.shape)}.")
    seed_everything(seed)
    net = build_classifier(arch, x.shape[1], target.shape[1]).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=stopping.factor,
                                                         patience=stopping.plateau_patience, min_lr=stopping.min_lr)
    gen = torch.Generator().manual_seed(seed)
    hist: dict = {"score": [], "lr": [], "best_epoch": -1}
    best, best_state = -float("inf"), None
    for epoch in range(stopping.max_epochs):
        hist["lr"].append(opt.param_groups[0]["lr"])
        _train_epoch(net, opt, x, target, batch_size, gen, device)
        score, hist["monitor"] = validation_score(net, xv, yv, device)
        hist["score"].append(score)
        plateau.step(score)
        if score > best:
            best, hist["best_epoch"] = score, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch - hist["best_epoch"] >= stopping.stop_patience:
            break
    hist["epochs"] = len(hist["score"])
    net.load_state_dict(best_state)
    return net.eval(), hist


@torch.no_grad()
def predict_logits(net: nn.Module, x: torch.Tensor, *, batch_size: int = 256, device: str = "cpu") -> torch.Tensor:
    """Logits ``[N, outputs]`` (on the CPU) of ``net`` in eval mode, ``batch_size`` images at a time."""
    x = torch.as_tensor(x, dtype=torch.float32)
    net.eval()
    return torch.cat([net(chunk.to(device)).float().cpu() for chunk in x.split(batch_size)])


__all__ = ["EarlyStopping", "fit_classifier", "fit_classifier_early_stopping", "predict_logits", "validation_score"]
