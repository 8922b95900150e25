"""Classification and grading metrics: AUC, macro-F1, MAE, confusion matrix (scikit-learn, with input checks).

Argument order is (y_true, y_pred or y_score), as in scikit-learn. Inputs are 1-D arrays,
lists or tensors of equal length (``y_score`` may be ``[N, K]`` class probabilities for a
multi-class AUC). Each has an accumulating ``torchmetrics.Metric`` class that collects the
batches (of every DDP rank) and evaluates on ``compute()`` (these metrics are not means of
per-sample values).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from latentmed.errors import LatentmedError
from latentmed.metrics._base import AccumulatingMetric, cat_state

__all__ = ["auc", "macro_f1", "mae", "confusion", "AUC", "MacroF1", "MAE", "Confusion"]


def _array(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == object:
        raise LatentmedError(f"{name}: expected numbers or labels of one type, got mixed objects.")
    return arr


def _pair(y_true: Any, y_other: Any, other_name: str, allow_2d: bool = False) -> tuple[np.ndarray, np.ndarray]:
    t = _array(y_true, "y_true")
    o = _array(y_other, other_name)
    if t.ndim != 1:
        raise LatentmedError(f"y_true has shape {t.shape}; expected a 1-D array of labels. "
                             "Use y.ravel() if it is a column.")
    if o.ndim != 1 and not (allow_2d and o.ndim == 2):
        raise LatentmedError(f"{other_name} has shape {o.shape}; expected a 1-D array"
                             f"{' or [N, K] class scores' if allow_2d else ''}.")
    if len(t) != len(o):
        raise LatentmedError(f"y_true has {len(t)} samples but {other_name} has {len(o)}.")
    if len(t) == 0:
        raise LatentmedError("no samples: y_true is empty.")
    return t, o


def auc(y_true: Any, y_score: Any, *, labels: Sequence | None = None, average: str = "macro") -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``).

    Binary: ``y_score`` is ``[N]`` scores of the positive class (the larger label).
    Multi-class: ``y_score`` is ``[N, K]`` probabilities (rows summing to 1) and the result is
    the one-vs-rest AUC averaged with ``average``.
    """
    from sklearn.metrics import roc_auc_score

    t, s = _pair(y_true, y_score, "y_score", allow_2d=True)
    classes = np.unique(t)
    if len(classes) < 2:
        raise LatentmedError(f"AUC is undefined when y_true has one class only ({classes.tolist()}); "
                             "evaluate on a set that contains both positives and negatives.")
    if s.ndim == 2:
        if s.shape[1] == 2 and len(classes) == 2 and labels is None:
            s = s[:, 1]
        else:
            return float(roc_auc_score(t, s, multi_class="ovr", labels=labels, average=average))
    elif len(classes) > 2:
        raise LatentmedError(f"y_true has {len(classes)} classes but y_score is 1-D; pass [N, K] class "
                             "probabilities for a multi-class AUC.")
    return float(roc_auc_score(t, s))


def macro_f1(y_true: Any, y_pred: Any, *, labels: Sequence | None = None) -> float:
    """F1 averaged over classes with equal weight (``f1_score(average="macro")``).

    ``labels`` chooses the classes averaged over (e.g. only the fracture grades 1-3); a chosen
    class absent from both arrays counts as F1 0 (scikit-learn's ``zero_division=0``).
    """
    from sklearn.metrics import f1_score

    t, p = _pair(y_true, y_pred, "y_pred")
    return float(f1_score(t, p, labels=None if labels is None else list(labels), average="macro",
                          zero_division=0))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error (``sklearn.metrics.mean_absolute_error``), e.g. of predicted grades."""
    from sklearn.metrics import mean_absolute_error

    t, p = _pair(y_true, y_pred, "y_pred")
    if not (np.issubdtype(t.dtype, np.number) and np.issubdtype(p.dtype, np.number)):
        raise LatentmedError(f"MAE needs numeric values, got dtypes {t.dtype} and {p.dtype}.")
    return float(mean_absolute_error(t, p))


def confusion(y_true: Any, y_pred: Any, *, labels: Sequence | None = None) -> np.ndarray:
    """Confusion matrix ``C[i, j]`` = number of samples of true class i predicted as j."""
    from sklearn.metrics import confusion_matrix

    t, p = _pair(y_true, y_pred, "y_pred")
    return confusion_matrix(t, p, labels=None if labels is None else list(labels))


def _label_tensor(x: Any, name: str) -> torch.Tensor:
    arr = _array(x, name)
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise LatentmedError(f"{name}: the accumulating metric classes need numeric labels or scores, got dtype "
                             f"{arr.dtype}; map the labels to integers first (the functions take any labels).")
    dtype = np.int64 if np.issubdtype(arr.dtype, np.integer) else np.float64
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=dtype))


class _Collecting(AccumulatingMetric):
    """Collect ``(y_true, y_other)`` batches; ``compute()`` evaluates ``fn`` on everything seen, on every rank.

    Labels and scores are ``"cat"`` states, so under ``torch.distributed`` ``compute()`` gathers
    all ranks' samples first (these metrics are not means of per-sample values).
    """

    _fn: Callable[..., Any]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self._metric_kwargs = kwargs
        self.add_state("y_true", default=[], dist_reduce_fx="cat")
        self.add_state("y_other", default=[], dist_reduce_fx="cat")

    def update(self, y_true: Any, y_other: Any) -> None:
        t, o = _label_tensor(y_true, "y_true"), _label_tensor(y_other, "y_pred")
        self.y_true.append(t.reshape(-1).to(self.device))
        self.y_other.append((o if o.ndim == 2 else o.reshape(-1)).to(self.device))

    def compute(self) -> Any:
        t, o = cat_state(self.y_true), cat_state(self.y_other)
        if t is None or o is None or t.numel() == 0:
            raise LatentmedError(f"{type(self).__name__}.compute(): no data; call update(y_true, y_pred) first.")
        return type(self)._fn(t.cpu().numpy(), o.cpu().numpy(), **self._metric_kwargs)


class AUC(_Collecting):
    """Accumulating :func:`auc` (``update(y_true, y_score)``)."""

    _fn = staticmethod(auc)

    def __init__(self, *, labels: Sequence | None = None, average: str = "macro") -> None:
        super().__init__(labels=labels, average=average)


class MacroF1(_Collecting):
    """Accumulating :func:`macro_f1` (``update(y_true, y_pred)``)."""

    _fn = staticmethod(macro_f1)

    def __init__(self, *, labels: Sequence | None = None) -> None:
        super().__init__(labels=labels)


class MAE(_Collecting):
    """Accumulating :func:`mae` (``update(y_true, y_pred)``)."""

    _fn = staticmethod(mae)


class Confusion(_Collecting):
    """Accumulating :func:`confusion` (``update(y_true, y_pred)``)."""

    _fn = staticmethod(confusion)

    def __init__(self, *, labels: Sequence | None = None) -> None:
        super().__init__(labels=labels)
