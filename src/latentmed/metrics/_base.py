"""Shared pieces of the metrics: tensor conversion and the accumulating ``update``/``compute``/``reset`` classes.

Every metric has a functional form returning per-sample values and an accumulating class in
the style of torchmetrics: ``update(...)`` adds a batch, ``compute()`` returns the mean over
everything seen, ``reset()`` starts again. The classes are plain Python objects (not
``torchmetrics.Metric``) so that they carry no device or distributed state; gather the
per-sample values yourself (``.values()``) if you evaluate on several processes.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

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


class PerSampleMean:
    """Accumulate the per-sample values of ``fn`` over batches; ``compute()`` is their mean.

    ``fn(*args, **kwargs)`` must return a 1-D (or 0-d) tensor of per-sample values, or a dict
    of them. Non-finite values (e.g. Hausdorff distance against an empty mask) are kept in
    ``values()`` and make the mean non-finite, so that they are not silently dropped.
    """

    def __init__(self, fn: Callable[..., Any], **kwargs: Any) -> None:
        self._fn = fn
        self._kwargs = kwargs
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        self._values: dict[str, list[torch.Tensor]] | list[torch.Tensor] | None = None

    def update(self, *args: Any) -> Any:
        """Add one batch; returns its per-sample values."""
        out = self._fn(*args, **self._kwargs)
        if isinstance(out, dict):
            if self._values is None:
                self._values = {k: [] for k in out}
            for key, value in out.items():
                self._values[key].append(value.detach().reshape(-1).cpu().double())
        else:
            if self._values is None:
                self._values = []
            self._values.append(out.detach().reshape(-1).cpu().double())
        return out

    def values(self) -> Any:
        """All per-sample values seen so far (a tensor, or a dict of tensors)."""
        if self._values is None:
            raise LatentmedError(f"{type(self).__name__}.compute(): no data; call update(...) first.")
        if isinstance(self._values, dict):
            return {k: torch.cat(v) for k, v in self._values.items()}
        return torch.cat(self._values)

    def compute(self) -> Any:
        """Mean of the per-sample values (a 0-d tensor, or a dict of them)."""
        values = self.values()
        if isinstance(values, dict):
            return {k: v.mean() for k, v in values.items()}
        return values.mean()

    def __call__(self, *args: Any) -> Any:
        return self.update(*args)

    def __repr__(self) -> str:
        if self._values is None:
            n = 0
        else:
            first = next(iter(self._values.values())) if isinstance(self._values, dict) else self._values
            n = sum(len(v) for v in first)
        return f"{type(self).__name__}(n_samples={n})"
