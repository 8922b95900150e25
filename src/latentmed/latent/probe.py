"""Linear probes on the semantic latent ``z_sem`` (scikit-learn estimator API).

A probe separates negatives from positives with one hyperplane ``w.z + b = 0``. Whatever the
classifier and whether the latents were standardised inside the probe, the fitted hyperplane
is reported in the space the latents came in: ``coef_`` (``w``), ``intercept_`` (``b``), the unit
normal ``normal_ = w / ||w||`` and ``offset_ = b / ||w||``, so that the signed distance of
Keicher/Atad et al. is ``(w.z + b) / ||w|| = normal_.z + offset_``.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from latentmed.errors import LatentmedError


def signed_distance(z, normal, offset: float) -> np.ndarray:
    """Signed distance of each row of ``z`` to the hyperplane ``n.w + b = 0``: ``(n.w + b) / ||n||``.

    ``normal`` (``n``) need not be unit; ``offset`` is ``b`` in the same units. The one definition
    for probes, graders and counterfactuals (the public counterfactual notebooks divide ``n`` but not
    ``b``: docs/design.md, "Formulas"). A zero normal (a probe that separated nothing) gives ``b``.
    """
    n = np.asarray(normal, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(n))
    return (np.asarray(z, dtype=np.float64) @ n + float(offset)) / (norm if norm > 0 else 1.0)

CLASSIFIERS = ("svm", "logreg", "linear")


def _standardisation(X: np.ndarray, standardize: bool, sample_weight=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (weighted) mean and scale (1 for constant features or when ``standardize`` is off)."""
    if not standardize:
        return np.zeros(X.shape[1]), np.ones(X.shape[1])
    mean = np.average(X, axis=0, weights=sample_weight)
    scale = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=sample_weight))
    scale[scale < 1e-12] = 1.0
    return mean, scale


def _fit_torch_linear(Xs: np.ndarray, y01: np.ndarray, sample_weight: np.ndarray, C: float, max_iter: int,
                      random_state) -> tuple[np.ndarray, float, int]:
    """Linear layer ``d -> 2`` trained with weighted cross-entropy (+ L2 ``||W||^2 / (C sum(s))``), full-batch L-BFGS.

    At the optimum ``W[1] = -W[0]``, so the penalty is ``||w||^2 / (2 C sum(s))`` of the logit difference
    ``w``: the same objective as scikit-learn's ``LogisticRegression(C)``.

    Returns the binary hyperplane ``w = W[1] - W[0]``, ``b = b[1] - b[0]`` (the logit difference)
    and the number of L-BFGS iterations.
    """
    import torch

    seed = random_state if isinstance(random_state, numbers.Integral) else np.random.RandomState(random_state).randint(2**31)
    gen = torch.Generator().manual_seed(int(seed))
    X = torch.as_tensor(Xs, dtype=torch.float64)
    y = torch.as_tensor(y01, dtype=torch.long)
    layer = torch.nn.Linear(X.shape[1], 2, dtype=torch.float64)
    with torch.no_grad():
        bound = 1.0 / max(1.0, np.sqrt(X.shape[1]))
        layer.weight.copy_(torch.empty_like(layer.weight).uniform_(-bound, bound, generator=gen))
        layer.bias.zero_()
    opt = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=max_iter, tolerance_grad=1e-7,
                            tolerance_change=1e-10, line_search_fn="strong_wolfe")
    sw = torch.as_tensor(sample_weight, dtype=torch.float64)
    total = sw.sum()
    penalty = 1.0 / (C * float(total))

    def closure():
        opt.zero_grad()
        ce = torch.nn.functional.cross_entropy(layer(X), y, reduction="none")
        loss = (sw * ce).sum() / total + penalty * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    W = layer.weight.detach().numpy()
    b = layer.bias.detach().numpy()
    n_iter = int(opt.state[opt._params[0]].get("n_iter", 1))
    return W[1] - W[0], float(b[1] - b[0]), max(1, n_iter)


def _check_sample_weight(sample_weight, n: int) -> np.ndarray | None:
    """Validate ``sample_weight`` (1D, length n, non-negative, not all zero); ``None`` stays ``None``."""
    if sample_weight is None:
        return None
    sw = np.asarray(sample_weight, dtype=np.float64)
    if sw.ndim == 0:
        sw = np.full(n, float(sw))
    if sw.shape != (n,):
        raise LatentmedError(f"sample_weight.shape == {sw.shape}, expected {(n,)} (one weight per sample).")
    if (sw < 0).any() or not np.isfinite(sw).all():
        raise LatentmedError("sample_weight must be finite and non-negative.")
    if sw.sum() <= 0:
        raise LatentmedError("Sample weights are all zero (sample_weight sums to zero); give some samples weight.")
    return sw


def _inner_class_weight(class_weight, classes: np.ndarray):
    """``class_weight`` for the inner classifier, which is trained on 0/1 (``classes_[1]`` -> 1).

    A dict keyed by the user's labels (e.g. ``{1: 1, 2: 10}`` or ``{"healthy": 1, "fracture": 5}``) is
    re-keyed to 0/1; labels missing from it weigh 1, as in scikit-learn.
    """
    if class_weight is None or isinstance(class_weight, str):
        if class_weight not in (None, "balanced"):
            raise LatentmedError(f"class_weight={class_weight!r} is not known; use None, 'balanced' or a dict "
                                 f"{{label: weight}} over the labels {classes.tolist()}.")
        return class_weight
    if not isinstance(class_weight, dict):
        raise LatentmedError(f"class_weight must be None, 'balanced' or a dict {{label: weight}}; got "
                             f"{type(class_weight).__name__}.")
    known = {c.item() if hasattr(c, "item") else c for c in classes}
    unknown = [k for k in class_weight if (k.item() if hasattr(k, "item") else k) not in known]
    if unknown:
        raise LatentmedError(f"class_weight names label(s) {unknown} that are not in y (labels: {classes.tolist()}); "
                             f"key the dict by the labels passed to fit.")
    return {i: float(class_weight.get(c, class_weight.get(c.item() if hasattr(c, "item") else c, 1.0)))
            for i, c in enumerate(classes)}


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Binary linear probe on latents: linear SVM, logistic regression or a torch linear layer.

    Parameters
    ----------
    classifier : {"svm", "logreg", "linear"}
        ``svm``: :class:`sklearn.svm.LinearSVC`; ``logreg``: :class:`sklearn.linear_model.LogisticRegression`;
        ``linear``: ``torch.nn.Linear(d, 2)`` trained with cross-entropy (L-BFGS, full batch).
    C : float
        Inverse regularisation strength (same meaning for all three).
    standardize : bool
        Fit on z-scored features (the DiffAE authors call normalisation crucial); the hyperplane
        is mapped back to the input space either way.
    class_weight : None, "balanced" or dict
        Weights of the two classes; a dict is keyed by the labels given to ``fit`` (e.g. ``{0: 1, 1: 4}``
        or ``{"G0": 1, "fracture": 4}``).
    max_iter : int
    random_state : int, RandomState or None

    Fitted attributes: ``classes_`` (2 labels; ``classes_[1]`` is the positive class), ``coef_`` ``[1, d]``,
    ``intercept_`` ``[1]``, ``normal_`` ``[d]`` (unit), ``offset_`` (float), ``mean_``, ``scale_``,
    ``n_features_in_``.

    Estimator checks: all of ``check_estimator`` passes for ``logreg`` and ``linear``; the probe is
    binary only (tagged ``multi_class=False``; fitting on 3+ classes raises "Only binary
    classification is supported"). See :func:`expected_failed_checks` for the one known failure.
    """

    def __init__(self, classifier: str = "svm", C: float = 1.0, standardize: bool = True,
                 class_weight=None, max_iter: int = 1000, random_state=None):
        self.classifier = classifier
        self.C = C
        self.standardize = standardize
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X, y, sample_weight=None):
        """Fit the hyperplane on latents ``X [n, d]`` and binary labels ``y``."""
        if self.classifier not in CLASSIFIERS:
            raise LatentmedError(f"classifier={self.classifier!r} is not known; use one of {CLASSIFIERS}.")
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=False)
        check_classification_targets(y)
        classes = np.unique(y)
        if len(classes) < 2:
            raise LatentmedError(f"only one class ({classes.tolist()}) in y; a probe needs negatives and positives. "
                                 f"Check the label column and the chosen negative/positive grades.")
        if len(classes) > 2:
            raise LatentmedError(f"Only binary classification is supported. LinearProbe got {len(classes)} classes "
                                 f"{classes.tolist()[:10]}; map the labels to negative/positive first "
                                 f"(HyperplaneGrader does this for ordinal grades).")
        sw = _check_sample_weight(sample_weight, len(y))
        self.classes_ = classes
        y01 = (y == classes[1]).astype(int)
        class_weight = _inner_class_weight(self.class_weight, classes)
        mean, scale = _standardisation(X, self.standardize, sw)
        Xs = (X - mean) / scale
        if self.classifier == "svm":
            from sklearn.svm import LinearSVC

            clf = LinearSVC(C=self.C, class_weight=class_weight, max_iter=self.max_iter,
                            random_state=self.random_state).fit(Xs, y01, sample_weight=sample_weight)
            w_s, b_s, n_iter = clf.coef_[0], float(clf.intercept_[0]), int(clf.n_iter_)
        elif self.classifier == "logreg":
            from sklearn.linear_model import LogisticRegression

            clf = LogisticRegression(C=self.C, class_weight=class_weight, max_iter=self.max_iter,
                                     random_state=self.random_state).fit(Xs, y01, sample_weight=sample_weight)
            w_s, b_s, n_iter = clf.coef_[0], float(clf.intercept_[0]), int(np.max(clf.n_iter_))
        else:
            from sklearn.utils.class_weight import compute_sample_weight

            weights = np.ones(len(y)) if sw is None else sw
            if class_weight is not None:
                weights = weights * compute_sample_weight(class_weight, y01)
            w_s, b_s, n_iter = _fit_torch_linear(Xs, y01, weights, self.C, self.max_iter, self.random_state)
        self.n_iter_ = n_iter
        # back to the input space: w_s.(x - m)/s + b_s = (w_s/s).x + (b_s - sum(w_s m / s))
        w = w_s / scale
        b = b_s - float(np.sum(w_s * mean / scale))
        self._set_hyperplane(w, b, mean, scale)
        return self

    def _set_hyperplane(self, w: np.ndarray, b: float, mean: np.ndarray, scale: np.ndarray) -> None:
        norm = float(np.linalg.norm(w))
        self.coef_ = np.asarray(w, dtype=np.float64).reshape(1, -1)
        self.intercept_ = np.array([b], dtype=np.float64)
        self.mean_ = np.asarray(mean, dtype=np.float64)
        self.scale_ = np.asarray(scale, dtype=np.float64)
        self.normal_ = self.coef_[0] / norm if norm > 0 else np.zeros_like(self.coef_[0])
        self.offset_ = b / norm if norm > 0 else 0.0

    def decision_function(self, X) -> np.ndarray:
        """Raw margin ``w.z + b`` (positive side = ``classes_[1]``)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_[0] + self.intercept_[0]

    def signed_distance(self, X) -> np.ndarray:
        """Euclidean signed distance to the hyperplane, ``(w.z + b) / ||w||``, in the input space."""
        check_is_fitted(self)
        return signed_distance(validate_data(self, X, reset=False, dtype=np.float64), self.normal_, self.offset_)

    def predict(self, X) -> np.ndarray:
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]

    def _has_proba(self) -> bool:
        return self.classifier in ("logreg", "linear")

    @available_if(_has_proba)
    def predict_proba(self, X) -> np.ndarray:
        """``[P(classes_[0]), P(classes_[1])]`` = sigmoid of the margin (logreg and linear only)."""
        from scipy.special import expit

        p = expit(self.decision_function(X))
        return np.stack([1 - p, p], axis=1)

    # persistence (see latentmed.latent.io.save_grader)
    def _get_state(self) -> tuple[dict, dict]:
        check_is_fitted(self)
        return ({"n_features_in": int(self.n_features_in_)},
                {"classes": self.classes_, "coef": self.coef_, "intercept": self.intercept_,
                 "mean": self.mean_, "scale": self.scale_})

    def _set_state(self, scalars: dict, arrays: dict) -> None:
        self.n_features_in_ = int(scalars["n_features_in"])
        self.classes_ = arrays["classes"]
        self._set_hyperplane(arrays["coef"][0], float(arrays["intercept"][0]), arrays["mean"], arrays["scale"])


def expected_failed_checks(estimator) -> dict[str, str]:
    """Checks of ``sklearn.utils.estimator_checks.check_estimator`` that fail by design, with reasons.

    ``svm``: ``check_sample_weight_equivalence_on_dense_data`` -- liblinear's LinearSVC is not
    exactly equivalent under weights vs repeated samples (scikit-learn lists the same for LinearSVC).
    """
    if getattr(estimator, "classifier", None) == "svm":
        return {"check_sample_weight_equivalence_on_dense_data":
                "liblinear (LinearSVC) does not make sample weights equivalent to repeated samples"}
    return {}
