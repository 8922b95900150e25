"""Shared pieces of the metrics: tensor conversion and the accumulating ``update``/``compute``/``reset`` classes.

Every metric has a functional form returning per-sample values and an accumulating class that
is a ``torchmetrics.Metric``: ``update(...)`` adds a batch, ``compute()`` returns the value over
everything seen, ``reset()`` starts again, and ``metric(batch)`` (``forward``) adds a batch and
returns the batch's own value. The running values are torchmetrics *states* with a reduction
(``add_state(..., dist_reduce_fx="cat" or "sum")``), so under ``torch.distributed`` (DDP,
``torchrun``) ``compute()`` first gathers every rank's states: each rank gets the metric of the
whole data, not of its shard. Move a metric to the device of its inputs (``metric.to(device)``)
when the process group needs it (NCCL); with gloo the CPU default is fine. Every rank must call
``update`` at least once before ``compute``. A ``DistributedSampler`` that pads the last batch
repeats a few samples; the gathered metric counts them twice, as torchmetrics does.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from latentmed.errors import LatentmedError


def as_tensor(x: Any, name: str) -> torch.Tensor:
    """numpy array / tensor / nested list -> tensor (no copy when already a tensor)."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    try:
        return torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError) as exc:
        raise LatentmedError(f"{name}: expected a torch tensor or numpy array, got {type(x).__name__}.") from exc


def cat_state(state: Any) -> torch.Tensor | None:
    """A ``"cat"`` state (a list of tensors, or one tensor after a DDP sync) as one tensor; None when empty."""
    if isinstance(state, torch.Tensor):
        return state
    return dim_zero_cat(state) if state else None


class AccumulatingMetric(Metric):
    """``torchmetrics.Metric`` with the toolkit's conventions: no gradients, and ``compute()`` before any
    ``update`` raises the metric's own one-line error (outside ``torch.distributed``, where a rank
    must still join the gather) instead of torchmetrics' warning."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    def _wrap_compute(self, compute: Callable) -> Callable:
        wrapped = super()._wrap_compute(compute)

        @functools.wraps(compute)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if not self.update_called and not (dist.is_available() and dist.is_initialized()):
                return compute(*args, **kwargs)  # raises the "no data" error
            return wrapped(*args, **kwargs)

        return checked


class PerSampleMean(AccumulatingMetric):
    """Accumulate the per-sample values of ``fn`` over batches; ``compute()`` is their mean.

    ``fn(*args, **kwargs)`` must return a 1-D (or 0-d) tensor of per-sample values, or, when
    ``keys`` is given, a dict with those keys. Values are kept (float64, ``"cat"`` states) so
    that ``values()`` returns every per-sample value of every rank. Non-finite values (e.g.
    Hausdorff distance against an empty mask) are kept and make the mean non-finite, so that
    they are not silently dropped.
    """

    def __init__(self, fn: Callable[..., Any], *, keys: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__()
        self._metric_fn = fn
        self._metric_kwargs = kwargs
        self._keys = None if keys is None else tuple(keys)
        for name in self._state_names():
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def _state_names(self) -> list[str]:
        return ["per_sample"] if self._keys is None else [f"per_sample_{k}" for k in self._keys]

    def update(self, *args: Any) -> None:
        """Add one batch."""
        out = self._metric_fn(*args, **self._metric_kwargs)
        if (self._keys is None) == isinstance(out, dict):
            raise LatentmedError(f"{type(self).__name__}: the metric returned "
                                 f"{'a dict' if isinstance(out, dict) else 'a tensor'} but keys={self._keys}.")
        parts = {"per_sample": out} if self._keys is None else {f"per_sample_{k}": out[k] for k in self._keys}
        for name, value in parts.items():
            getattr(self, name).append(value.detach().reshape(-1).to(self.device, torch.float64))

    def _gathered(self) -> Any:
        found = {name: cat_state(getattr(self, name)) for name in self._state_names()}
        if any(v is None for v in found.values()):
            raise LatentmedError(f"{type(self).__name__}.compute(): no data; call update(...) first.")
        if self._keys is None:
            return found["per_sample"]
        return {k: found[f"per_sample_{k}"] for k in self._keys}

    def values(self) -> Any:
        """All per-sample values seen so far, on every rank (a tensor, or a dict of tensors)."""
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync,
                               should_unsync=self._should_unsync):
            return self._gathered()

    def compute(self) -> Any:
        """Mean of the per-sample values (a 0-d tensor, or a dict of them)."""
        values = self._gathered()
        if isinstance(values, dict):
            return {k: v.mean() for k, v in values.items()}
        return values.mean()

    def extra_repr(self) -> str:
        first = getattr(self, self._state_names()[0])
        n = first.numel() if isinstance(first, torch.Tensor) else sum(v.numel() for v in first)
        return f"n_samples={n}"
