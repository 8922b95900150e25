"""Ordinal grading by the signed distance to a latent hyperplane (Keicher, Atad et al.).

A :class:`~latentmed.latent.probe.LinearProbe` separates the chosen negative grades (e.g. Genant
G0) from the chosen positive grades (G2, G3; G1 left out as noisy). The signed distance
``dist(w) = (n.w + b) / ||n||`` is calibrated to the grade scale by a polynomial ``g = p(dist)``:

- ``calibration="means"``: the line through the mean distances of two reference grades
  (the papers: G0 and G3), ``g = g_a + (d - d_a) (g_b - g_a) / (d_b - d_a)``;
- ``calibration="poly"``: least-squares polynomial of ``degree`` on the samples of the chosen
  grades (the papers: degree 1 and 3 on G0, G2, G3).

``predict_continuous`` gives the continuous severity, ``predict`` rounds to the nearest grade of
the ordinal scale (which clips) and optionally maps grades below ``healthy_below`` to healthy.
``inverse_calibrate(grade)`` is the distance whose calibrated grade is ``grade`` (used for
counterfactuals; grades outside the scale such as -1 or 4 extrapolate).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from latentmed.errors import LatentmedError, expect
from latentmed.latent.probe import LinearProbe, _check_sample_weight, signed_distance

CALIBRATIONS = ("means", "poly")


def parse_calibration(spec: str) -> dict:
    """``"means:0,3"`` / ``"poly:3:0,2,3"`` / ``"poly:1"`` -> HyperplaneGrader keyword arguments."""
    parts = str(spec).strip().split(":")
    kind = parts[0]

    def grades(text: str) -> tuple:
        try:
            return tuple(int(g) for g in text.split(",") if g.strip() != "")
        except ValueError as exc:
            raise LatentmedError(f"calibration {spec!r}: grades must be integers separated by commas.") from exc

    if kind == "means" and len(parts) in (1, 2):
        g = grades(parts[1]) if len(parts) == 2 else None
        expect(g is None or len(g) == 2, f"calibration {spec!r}: 'means' takes exactly two reference grades, e.g. means:0,3.")
        return {"calibration": "means", "calibration_grades": g, "degree": 1}
    if kind == "poly" and len(parts) in (2, 3):
        try:
            degree = int(parts[1])
        except ValueError as exc:
            raise LatentmedError(f"calibration {spec!r}: degree {parts[1]!r} is not an integer (e.g. poly:3:0,2,3).") from exc
        return {"calibration": "poly", "degree": degree, "calibration_grades": grades(parts[2]) if len(parts) == 3 else None}
    raise LatentmedError(f"calibration {spec!r} not understood; use means:G_A,G_B (e.g. means:0,3) or "
                         f"poly:DEGREE[:GRADES] (e.g. poly:3:0,2,3).")


def calibration_name(grader: "HyperplaneGrader") -> str:
    """Inverse of :func:`parse_calibration` for a fitted grader, e.g. ``"poly:3:0,2,3"``."""
    g = ",".join(str(int(v)) for v in grader.calibration_grades_)
    return f"means:{g}" if grader.calibration == "means" else f"poly:{grader.degree}:{g}"


def _check_side_weights(class_weight, negative: tuple, positive: tuple) -> None:
    """A dict ``class_weight`` of the grader weighs the probe's two sides, keyed 0 (negative) and 1 (positive)."""
    if not isinstance(class_weight, dict):
        return  # None, "balanced", or an error of LinearProbe's
    keys = [k.item() if hasattr(k, "item") else k for k in class_weight]
    bad = [k for k in keys if k not in (0, 1)]
    if bad:
        raise LatentmedError(f"class_weight keys {bad} are not sides of the probe: the grader's class_weight weighs "
                             f"its two sides, 0 = negative grades {[int(g) for g in negative]} and 1 = positive grades "
                             f"{[int(g) for g in positive]}, not single grades; use e.g. class_weight={{0: 1, 1: 10}} or "
                             "'balanced' (per-grade weights: pass sample_weight to fit).")


class HyperplaneGrader(ClassifierMixin, BaseEstimator):
    """Ordinal grader: linear probe on latents + calibration of the signed hyperplane distance.

    Parameters
    ----------
    negative, positive : tuple of int or None
        Grades used as negatives / positives to fit the probe. Defaults: the lowest grade in ``y`` is
        negative, every higher grade positive (Pfirrmann, retinopathy). Genant in the papers:
        ``negative=(0,)``, ``positive=(2, 3)``. Other grades are not used by the probe.
    classifier, C, standardize, class_weight, max_iter, random_state
        Passed to :class:`LinearProbe`.
    calibration : {"means", "poly"}
    calibration_grades : tuple of int or None
        ``means``: the two reference grades (default: lowest and highest grade of the scale);
        ``poly``: the grades whose samples the polynomial is fitted on (default: negative + positive).
    degree : int
        Polynomial degree for ``poly`` (``means`` is always degree 1).
    healthy_below : int or None
        ``predict`` maps grades below this to the lowest grade (the papers count < G2 as healthy).
    scale : tuple of int or None
        The ordinal scale; default: every integer from ``min(y)`` to ``max(y)``.
    model_id : str or None
        Identity of the DAE whose latents the grader is fitted on (checked by :meth:`check_latents`).

    Fitted attributes: ``probe_``, ``normal_`` (unit), ``offset_``, ``coef_``, ``intercept_`` (input space),
    ``classes_`` (= the scale), ``calibration_grades_``, ``calibration_coef_`` (power basis, increasing),
    ``reference_distances_`` (mean distance per calibration grade), ``train_distances_``/``train_grades_``
    (for :meth:`recalibrate`), ``class_means_`` ``[2, d]`` (mean negative and positive training latent, input
    space; the ``"means"`` counterfactual direction), ``latent_var_`` ``[d]`` and ``pattern_`` ``[d]`` (per-feature
    variance and ``Cov(z) n`` of the probe's training latents; the ``"normal-std"`` and ``"pattern"`` directions),
    ``n_features_in_``.

    Estimator checks: ``check_estimator`` passes except :func:`expected_failed_checks`:
    ``check_classifiers_classes`` (string labels have no order), ``check_classifiers_train`` (sklearn's
    3-blob data are not ordered along one direction), ``check_class_weight_classifiers`` (class_weight
    weighs the probe's two sides, not each grade). The sample-weight equivalence check passes for the
    grader with ``svm`` too (only the bare ``svm`` probe misses its tolerance).
    """

    def __init__(self, negative=None, positive=None, classifier: str = "svm", C: float = 1.0,
                 standardize: bool = True, class_weight=None, max_iter: int = 1000,
                 calibration: str = "means", calibration_grades=None, degree: int = 1,
                 healthy_below=None, scale=None, model_id=None, random_state=None):
        self.negative = negative
        self.positive = positive
        self.classifier = classifier
        self.C = C
        self.standardize = standardize
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.calibration = calibration
        self.calibration_grades = calibration_grades
        self.degree = degree
        self.healthy_below = healthy_below
        self.scale = scale
        self.model_id = model_id
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, sample_weight=None):
        """Fit the probe on negative vs positive grades, then the calibration on ``calibration_grades``."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        y = _as_grades(y)
        sample_weight = _check_sample_weight(sample_weight, len(y))
        present = np.unique(y if sample_weight is None else y[sample_weight > 0])
        scale = (np.arange(present.min(), present.max() + 1) if self.scale is None
                 else np.unique(np.asarray(self.scale, dtype=np.int64)))
        negative = (present.min(),) if self.negative is None else tuple(int(g) for g in np.atleast_1d(self.negative))
        positive = (tuple(int(g) for g in present if g > max(negative)) if self.positive is None
                    else tuple(int(g) for g in np.atleast_1d(self.positive)))
        expect(not set(negative) & set(positive), f"negative {negative} and positive {positive} grades overlap.")
        is_neg, is_pos = np.isin(y, negative), np.isin(y, positive)
        if sample_weight is not None:
            is_neg, is_pos = is_neg & (sample_weight > 0), is_pos & (sample_weight > 0)
        if not is_neg.any() or not is_pos.any():
            raise LatentmedError(
                f"only one class present for the probe: {int(is_neg.sum())} negative (grades {list(negative)}) and "
                f"{int(is_pos.sum())} positive (grades {list(positive)}) samples; grades present: {present.tolist()}. "
                f"Choose --negative/--positive among the present grades.")
        used = is_neg | is_pos
        sw = None if sample_weight is None else sample_weight[used]
        _check_side_weights(self.class_weight, negative, positive)
        probe = LinearProbe(classifier=self.classifier, C=self.C, standardize=self.standardize,
                            class_weight=self.class_weight, max_iter=self.max_iter, random_state=self.random_state)
        probe.fit(X[used], is_pos[used].astype(int), sample_weight=sw)
        self.probe_ = probe
        self.negative_, self.positive_ = negative, positive
        self.classes_ = scale
        self.n_iter_ = probe.n_iter_
        self._copy_hyperplane()
        self.train_distances_ = probe.signed_distance(X)
        self.train_grades_ = y
        self.train_weights_ = np.ones(len(y)) if sample_weight is None else sample_weight
        # class means in the input space: the "means" counterfactual direction (counterfactual.py)
        w = self.train_weights_
        self.class_means_ = np.stack([np.average(X[m], axis=0, weights=w[m]) for m in (is_neg, is_pos)])
        # covariance of the probe's training latents along the normal: the "pattern" Cov(z) n (Haufe et al.
        # 2014) and its diagonal (the "normal-std" direction, DiffAE's move in standardised space)
        Xu, wu = X[used], w[used]
        centred = Xu - np.average(Xu, axis=0, weights=wu)
        self.latent_var_ = np.average(centred ** 2, axis=0, weights=wu)
        self.pattern_ = centred.T @ (wu * (centred @ self.normal_)) / wu.sum()
        self._calibrate(self.calibration, self.calibration_grades, self.degree)
        return self

    def _copy_hyperplane(self) -> None:
        p = self.probe_
        self.coef_, self.intercept_, self.normal_, self.offset_ = p.coef_, p.intercept_, p.normal_, p.offset_

    def _calibrate(self, calibration, calibration_grades, degree) -> None:
        if calibration not in CALIBRATIONS:
            raise LatentmedError(f"calibration={calibration!r} is not known; use one of {CALIBRATIONS}.")
        d, y, w = self.train_distances_, self.train_grades_, self.train_weights_
        keep = w > 0
        d, y, w = d[keep], y[keep], w[keep]
        if calibration == "means":
            grades = ((int(self.classes_.min()), int(self.classes_.max())) if calibration_grades is None
                      else tuple(int(g) for g in calibration_grades))
            expect(len(grades) == 2 and grades[0] != grades[1],
                   f"calibration 'means' needs two different reference grades; got {grades}.")
        else:
            grades = (tuple(self.negative_) + tuple(self.positive_) if calibration_grades is None
                      else tuple(int(g) for g in calibration_grades))
            expect(isinstance(degree, (int, np.integer)) and degree >= 1, f"degree must be an integer >= 1; got {degree!r}.")
        empty = [g for g in grades if not np.any(y == g)]
        expect(not empty, f"calibration grade(s) {empty} have no samples (grades present: {np.unique(y).tolist()}); "
                          f"choose calibration grades that occur in the labels.")
        means = np.array([np.average(d[y == g], weights=w[y == g]) for g in grades])
        if calibration == "means":
            expect(abs(means[1] - means[0]) > 1e-12,
                   f"grades {grades} have the same mean distance {means[0]:.4g}; the probe does not separate them.")
            slope = (grades[1] - grades[0]) / (means[1] - means[0])
            coef = np.array([grades[0] - slope * means[0], slope])
            lin = coef
        else:
            mask = np.isin(y, grades)
            expect(len(np.unique(d[mask])) > degree,
                   f"poly calibration of degree {degree} needs more than {degree} distinct distances; "
                   f"got {len(np.unique(d[mask]))} samples of grades {list(grades)}.")
            sw = np.sqrt(w[mask])  # numpy weights multiply residuals: sqrt gives weighted least squares
            coef = np.polynomial.polynomial.polyfit(d[mask], y[mask].astype(float), degree, w=sw)
            lin = np.polynomial.polynomial.polyfit(d[mask], y[mask].astype(float), 1, w=sw)
        self.calibration_grades_ = np.asarray(grades, dtype=np.int64)
        self.reference_distances_ = means
        self.calibration_coef_ = np.asarray(coef, dtype=np.float64)
        self._linear_coef = np.asarray(lin, dtype=np.float64)

    def recalibrate(self, calibration: str, calibration_grades=None, degree: int = 1) -> "HyperplaneGrader":
        """A copy with the same hyperplane and a new calibration (fitted on the training distances)."""
        check_is_fitted(self)
        from sklearn.base import clone

        new = clone(self).set_params(calibration=calibration, calibration_grades=calibration_grades, degree=degree)
        for k, v in vars(self).items():
            if k.endswith("_") and not k.startswith("__"):
                setattr(new, k, v)
        new._calibrate(calibration, calibration_grades, degree)
        return new

    # --------------------------------------------------------------- prediction
    def signed_distance(self, X) -> np.ndarray:
        """``(n.w + b) / ||n||`` per row of ``X`` (input space), by :func:`~latentmed.latent.probe.signed_distance`."""
        check_is_fitted(self)
        return signed_distance(validate_data(self, X, reset=False, dtype=np.float64), self.normal_, self.offset_)

    def calibrate(self, distance) -> np.ndarray:
        """Distance -> continuous grade, ``p(distance)``."""
        check_is_fitted(self)
        return np.polynomial.polynomial.polyval(np.asarray(distance, dtype=np.float64), self.calibration_coef_)

    def inverse_calibrate(self, grade) -> np.ndarray:
        """Grade -> distance ``d`` with ``p(d) = grade`` (real root nearest the linear fit's inverse)."""
        check_is_fitted(self)
        g = np.asarray(grade, dtype=np.float64)
        out = np.empty(g.shape)
        c0, c1 = self._linear_coef
        for i, gi in np.ndenumerate(g):
            guess = (gi - c0) / c1 if abs(c1) > 1e-15 else 0.0
            coef = self.calibration_coef_.copy()
            coef[0] -= gi
            roots = np.polynomial.polynomial.polyroots(coef)
            tol = 1e-7 * max(1.0, float(np.max(np.abs(roots))))
            real = roots[np.abs(roots.imag) <= tol].real
            if len(real) == 0:  # even degree without a real solution: the extremum is the closest reach
                raise LatentmedError(f"grade {gi} is not reached by the calibration {calibration_name(self)}; "
                                     f"choose a grade inside its range or an odd-degree / 'means' calibration.")
            out[i] = real[np.argmin(np.abs(real - guess))]
        return out if out.ndim else float(out)

    def predict_continuous(self, X) -> np.ndarray:
        """Continuous severity: the calibrated signed distance."""
        return self.calibrate(self.signed_distance(X))

    def predict(self, X) -> np.ndarray:
        """Nearest grade of the scale (rounds and clips); grades below ``healthy_below`` -> the lowest grade."""
        return self.round_grades(self.predict_continuous(X))

    def round_grades(self, continuous) -> np.ndarray:
        """Round continuous grades to the ordinal scale (and apply ``healthy_below``)."""
        check_is_fitted(self)
        c = np.asarray(continuous, dtype=np.float64)
        scale = self.classes_
        pred = scale[np.argmin(np.abs(c[..., None] - scale), axis=-1)]
        if self.healthy_below is not None:
            pred = np.where(pred < self.healthy_below, scale.min(), pred)
        return pred

    def check_latents(self, z_sem: np.ndarray, model_id: str | None = None, source: str = "latents") -> None:
        """Clear error when latents come from another DAE (``model_id``) or have another dimension."""
        check_is_fitted(self)
        z = np.asarray(z_sem)
        expect(z.ndim == 2 and z.shape[1] == self.n_features_in_,
               f"{source} have dimension {z.shape[-1] if z.ndim else '?'} but the grader was fitted on "
               f"{self.n_features_in_}-d latents; encode with the same DAE the grader was fitted on.")
        if self.model_id and model_id and str(model_id) != str(self.model_id):
            raise LatentmedError(f"{source} come from DAE {model_id!r} but the grader was fitted on latents of DAE "
                                 f"{self.model_id!r}; re-encode with that DAE or refit the grader.")
        expect(np.isfinite(z).all(), f"{source} contain NaN/inf values.")

    # ---------------------------------------------------------------- persistence
    def _get_state(self) -> tuple[dict, dict]:
        check_is_fitted(self)
        ps, pa = self.probe_._get_state()
        scalars = {"n_features_in": int(self.n_features_in_), "negative": list(self.negative_),
                   "positive": list(self.positive_), "n_iter": int(np.max(self.n_iter_)), "probe": ps}
        arrays = {f"probe_{k}": v for k, v in pa.items()}
        arrays.update(classes=self.classes_, train_distances=self.train_distances_, train_grades=self.train_grades_,
                      train_weights=self.train_weights_, calibration_grades=self.calibration_grades_, calibration_coef=self.calibration_coef_,
                      linear_coef=self._linear_coef, reference_distances=self.reference_distances_,
                      class_means=self.class_means_, latent_var=self.latent_var_, pattern=self.pattern_)
        return scalars, arrays

    def _set_state(self, scalars: dict, arrays: dict) -> None:
        probe = LinearProbe(classifier=self.classifier, C=self.C, standardize=self.standardize,
                            class_weight=self.class_weight, max_iter=self.max_iter, random_state=self.random_state)
        probe._set_state(scalars["probe"], {k[6:]: v for k, v in arrays.items() if k.startswith("probe_")})
        probe.n_iter_ = scalars["n_iter"]
        self.probe_ = probe
        self._copy_hyperplane()
        self.n_features_in_ = int(scalars["n_features_in"])
        self.n_iter_ = scalars["n_iter"]
        self.negative_, self.positive_ = tuple(scalars["negative"]), tuple(scalars["positive"])
        self.classes_ = arrays["classes"]
        self.train_distances_, self.train_grades_ = arrays["train_distances"], arrays["train_grades"]
        self.train_weights_ = arrays["train_weights"]
        self.calibration_grades_ = arrays["calibration_grades"]
        self.calibration_coef_ = arrays["calibration_coef"]
        self._linear_coef = arrays["linear_coef"]
        self.reference_distances_ = arrays["reference_distances"]
        # graders saved by older versions lack these (move_direction then says to refit)
        for name in ("class_means", "latent_var", "pattern"):
            if name in arrays:
                setattr(self, f"{name}_", arrays[name])


def _as_grades(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    yf = y.astype(np.float64)
    if not np.all(np.isfinite(yf)) or not np.allclose(yf, np.round(yf)):
        raise LatentmedError(f"grades must be integers (an ordinal scale); got continuous values like "
                             f"{np.unique(y)[:5].tolist()}.")
    return np.round(yf).astype(np.int64)


def expected_failed_checks(estimator) -> dict[str, str]:
    """``check_estimator`` checks that do not apply to an ordinal grader, with the reason."""
    reason_str = "grades are numeric ordinal levels; string class labels have no order or distance"
    out = {name: reason_str for name in (
        "check_classifiers_classes",)}
    out["check_classifiers_train"] = ("sklearn's multiclass blobs are not ordered along one direction, "
                                      "so a single hyperplane + monotone calibration cannot reach its accuracy bar")
    out["check_class_weight_classifiers"] = ("class_weight weighs the probe's two sides (negative vs positive "
                                             "grades), not each of sklearn's multiclass labels")
    return out
