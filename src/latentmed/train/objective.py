"""The objective contract of :func:`latentmed.train.train`: per-sample losses that know no optimizer.

An objective is any callable ``objective(model, batch, step)``: ``model`` is the trained module
(possibly DDP/compile-wrapped, so it is called only through ``model(...)``), ``batch`` what the
data loader gives, ``step`` the 0-based optimizer step about to be taken (a schedule over steps,
such as the two-phase DAE objective's phase switch, reads it; others ignore it). It returns the
per-sample loss ``[B]`` or ``(loss[B], {name: float})`` with extra values to log (EDM ``loss.py``).

An evaluation hook ``eval_fn(ema_model, step) -> {metric: float}`` scores the EMA model for
checkpoint selection (``TrainConfig.eval_every``, ``select_metric``).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Union

import torch
from torch import nn

LossOutput = Union[torch.Tensor, "tuple[torch.Tensor, dict[str, float]]"]
EvalFn = Callable[[nn.Module, int], "dict[str, float]"]


class Objective(Protocol):
    """``objective(model, batch, step) -> loss[B] | (loss[B], logs)``."""

    def __call__(self, model: nn.Module, batch: Any, step: int) -> LossOutput: ...


def batch_images(batch: Any) -> torch.Tensor:
    """The image (or latent) tensor of a batch: a dict's ``"image"``, a tuple's first item, or the tensor itself."""
    if isinstance(batch, dict):
        return batch["image"]
    if isinstance(batch, (tuple, list)):
        return batch[0]
    return batch


__all__ = ["EvalFn", "LossOutput", "Objective", "batch_images"]
