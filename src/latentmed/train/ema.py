"""Exponential moving average of model weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """EMA with the usual warm-up ``decay_k = min(decay, (1 + k) / (10 + k))`` (k = updates so far).

    Without the warm-up a 0.9999 EMA of a short CPU run would stay at the initial weights.
    Buffers (e.g. norms' running stats) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.num_updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        ema_p = [p for p in self.model.parameters()]
        src_p = [p.detach().to(q.dtype) for p, q in zip(model.parameters(), ema_p)]
        torch._foreach_lerp_(ema_p, src_p, 1 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)
        self.num_updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()
