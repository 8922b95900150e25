"""One library function per ``latentmed grade`` / ``latentmed counterfactual`` command.

They take paths or in-memory objects, return results and (given an output path) write them, so
the CLI, ``latentmed demo`` and Python users share one implementation.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from latentmed.data.labels import match_ids, read_labels
from latentmed.errors import LatentmedError, expect
from latentmed.latent.evaluation import GradingResult
from latentmed.latent.grader import HyperplaneGrader, parse_calibration
from latentmed.latent.io import Latents, load_grader, load_latents, save_grader


def _latents(latents) -> Latents:
    return latents if isinstance(latents, Latents) else load_latents(latents)


def _grader(grader) -> HyperplaneGrader:
    return grader if isinstance(grader, HyperplaneGrader) else load_grader(grader)


def join_labels(latents, labels, column: str, ids: Sequence[str] | None = None,
                id_column: str = "id") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(z_sem, grades, ids)`` for the ids present in both (and in ``ids`` if given), in latents order."""
    lat, df = _latents(latents), read_labels(labels, id_column=id_column)
    expect(column in df.columns, f"labels have no column {column!r}; columns are {list(df.columns)}.")
    df = df[df[column].notna()]
    match = match_ids(lat.ids.tolist(), df.index.tolist())
    label_of = {i: df.at[match[i], column] for i in lat.ids.tolist() if i in match}
    keep = list(label_of)
    if not keep:
        raise LatentmedError(f"the latents and the labels share no ids (latents: e.g. {lat.ids[:3].tolist()}; "
                             f"labels: e.g. {df.index[:3].tolist()}); encode the same data set the labels "
                             f"describe.")
    if ids is not None:
        wanted = set(str(i) for i in ids)
        keep = [i for i in keep if i in wanted]
        expect(keep, "none of the requested ids have both latents and labels.")
    sel = lat.select(keep)
    return sel.z_sem, np.asarray([label_of[i] for i in keep]), np.asarray(keep)


def holdout_split(ids: Sequence[str], y, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified ``(train_ids, test_ids)`` with ``fraction`` held out (plain random split if a class is tiny)."""
    from sklearn.model_selection import train_test_split

    ids = np.asarray(ids)
    expect(0.0 < fraction < 1.0, f"holdout fraction must be in (0, 1); got {fraction}.")
    _, counts = np.unique(y, return_counts=True)
    strat = y if counts.min() >= 2 else None
    tr, te = train_test_split(ids, test_size=fraction, random_state=seed, stratify=strat)
    return np.sort(tr), np.sort(te)


def fit_grader(latents, labels, column: str, *, negative: Sequence[int] | None = None,
               positive: Sequence[int] | None = None, classifier: str = "svm", calibration: str = "means",
               holdout: float = 0.0, seed: int = 0, healthy_below: int | None = None, standardize: bool = True,
               C: float = 1.0, class_weight: str | None = None, ids: Sequence[str] | None = None,
               id_column: str = "id", out: str | os.PathLike | None = None) -> HyperplaneGrader:
    """Fit a :class:`HyperplaneGrader` on the latents of the labelled ids (minus a stratified ``holdout``).

    ``calibration``: ``"means:0,3"``, ``"poly:3:0,2,3"``, ... (see :func:`parse_calibration`). The DAE's
    ``model_id`` from the latents file is stored in the grader; ``metadata_`` records the column, the
    training ids and the held-out ids. ``class_weight="balanced"`` weighs the probe's negative and positive
    sides by inverse frequency (as the CNN baseline's loss). With ``out``, the grader is saved there.
    """
    lat = _latents(latents)
    z, y, keep = join_labels(lat, labels, column, ids, id_column)
    n_labelled = len(keep)
    test_ids: np.ndarray = np.array([], dtype=str)
    if holdout:
        train_ids, test_ids = holdout_split(keep, y, holdout, seed)
        z, y, keep = join_labels(lat, labels, column, train_ids, id_column)
    grader = HyperplaneGrader(negative=None if negative is None else tuple(int(g) for g in negative),
                              positive=None if positive is None else tuple(int(g) for g in positive),
                              classifier=classifier, C=C, standardize=standardize, class_weight=class_weight,
                              healthy_below=healthy_below,
                              model_id=lat.model_id or None, random_state=seed, **parse_calibration(calibration))
    grader.fit(z, y)
    grader.metadata_ = {"column": column, "train_ids": keep.tolist(), "holdout_ids": test_ids.tolist(),
                        "n_train": int(len(keep)), "n_latents": int(len(lat.ids)), "n_labelled": int(n_labelled),
                        "latents_dim": lat.dim, "id_column": id_column}
    if out is not None:
        save_grader(grader, out)
    return grader


def fit_graders(latents, labels, columns: Sequence[str], out: str | os.PathLike | None = None,
                **kwargs: Any) -> dict[str, HyperplaneGrader]:
    """Several label columns on one set of latents: ``{column: grader}``, saved to ``out/<column>``."""
    lat = _latents(latents)
    return {c: fit_grader(lat, labels, c, out=None if out is None else Path(out) / c, **kwargs) for c in columns}


def predict_grades(grader, latents, out: str | os.PathLike | None = None):
    """DataFrame ``id, distance, grade_continuous, grade`` for every latent; written as CSV with ``out``."""
    import pandas as pd

    grader, lat = _grader(grader), _latents(latents)
    grader.check_latents(lat.z_sem, lat.model_id, source="latents")
    z = lat.z_sem.astype(np.float64)
    df = pd.DataFrame({"id": lat.ids, "distance": grader.signed_distance(z),
                       "grade_continuous": grader.predict_continuous(z), "grade": grader.predict(z)})
    if out is not None:
        from latentmed.io import write_text

        write_text(out, df.to_csv(index=False, float_format="%.6g"))
    return df


@dataclasses.dataclass(frozen=True)
class Baselines:
    """The reference rows of :func:`evaluate_grader` and their inputs.

    ``data_dir`` (``DIR/images/<id>.png``): the same probe on the raw pixels and a supervised CNN
    (``arch``, ``epochs``; class-balanced when the grader is), both fitted on the grader's training
    ids; with ``run`` (the DAE run folder) too, the same probe on the latents of a randomly
    initialised encoder of that architecture. ``read``: further :func:`latentmed.data.open_images`
    arguments (axis, window, ...); ``progress``: show the CNN's progress bar.
    """

    data_dir: str | os.PathLike
    run: str | os.PathLike | None = None
    arch: str = "small"
    epochs: int = 30
    read: dict | None = None
    progress: bool = False


@dataclasses.dataclass
class _Split:
    """Every labelled latent (``*_all``), the held-out part that is scored, and the grader's training ids."""

    z_all: np.ndarray
    ids_all: np.ndarray
    z: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    train_ids: list[str]


def _split(grader, lat: Latents, labels, column: str, ids, id_column: str) -> _Split:
    """Held-out ``ids`` if given, else the labelled ids the grader was not trained on."""
    train_ids = sorted((getattr(grader, "metadata_", {}) or {}).get("train_ids", []))
    z_all, _, ids_all = join_labels(lat, labels, column, None, id_column)
    if ids is None:
        held = ~np.isin(ids_all, train_ids)
        expect(held.any(), "every labelled id was used to fit the grader; nothing is held out. Fit with "
                           "--holdout 0.3 (holdout=0.3) or pass the test ids.")
        ids = ids_all[held]
    z, y, ids = join_labels(lat, labels, column, ids, id_column)
    return _Split(z_all, ids_all, z.astype(np.float64), y.astype(int), ids, train_ids)


def evaluate_grader(grader, latents, labels, column: str | None = None, *, ids: Sequence[str] | None = None,
                    calibrations: Sequence[str] | None = None, f1_grades: Sequence[int] | None = None,
                    protocol: str = "papers", baselines: Baselines | None = None,
                    tsne: bool | str | Sequence[str] = False, id_column: str = "id", seed: int = 0) -> GradingResult:
    """Grading tables on held-out ids: AUC (bootstrap 95% CI), macro-F1, MAE, accuracy, confusion.

    Evaluates on ``ids`` if given, else on the labelled ids the grader was not trained on (its
    ``metadata_["train_ids"]``). Rows: the latent grader with its own and each of ``calibrations``
    (same hyperplane, e.g. ``["poly:1:0,2,3", "poly:3:0,2,3"]``), then the reference rows of
    ``baselines`` (:class:`Baselines`). One table per protocol (``"papers"`` or ``"all"``,
    :func:`latentmed.latent.evaluation.protocol_view`); ``protocol`` is the one shown first (and the one
    ``f1_grades`` applies to). ``tsne``: a t-SNE of every labelled latent, coloured by the graded column
    (True), by the given column(s) (a comma-separated string or a sequence), or none (False, the default:
    it is only for pictures). Returns a :class:`GradingResult`; :func:`latentmed.latent.report.write_grading`
    writes its tables and figures. Twelve parameters: the inputs (grader, latents, labels, column, ids,
    id_column) and one per option of ``latentmed grade evaluate`` (the reference rows' options are
    grouped in :class:`Baselines`).
    """
    from latentmed.latent.evaluation import PROTOCOLS, grading_metrics
    from latentmed.latent.grader import calibration_name

    expect(protocol in PROTOCOLS, f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}.")
    grader, lat = _grader(grader), _latents(latents)
    column = column or (getattr(grader, "metadata_", {}) or {}).get("column")
    expect(column is not None, "which label column? pass column= (--column).")
    grader.check_latents(lat.z_sem, lat.model_id, source="latents")
    split = _split(grader, lat, labels, column, ids, id_column)
    variants = [grader] + [grader.recalibrate(**parse_calibration(c)) for c in (calibrations or [])
                           if calibration_name(grader) != c]
    distance = grader.signed_distance(split.z)
    # (method, detection score, predicted grades) of every row
    methods = [(f"latent {g.classifier} + {calibration_name(g)}", distance, g.predict(split.z)) for g in variants]
    if baselines is not None:
        methods += _baseline_methods(grader, lat, labels, column, split, baselines, id_column, seed)
    tables = {p: [grading_metrics(split.y, score, pred, negative=grader.negative_, positive=grader.positive_,
                                  f1_grades=f1_grades if p == protocol else None, scale=grader.classes_,
                                  protocol=p, method=name, seed=seed) for name, score, pred in methods]
              for p in (protocol, *[p for p in PROTOCOLS if p != protocol])}
    xs = np.linspace(distance.min() - 0.1 * np.ptp(distance), distance.max() + 0.1 * np.ptp(distance), 200)
    result = GradingResult(
        column=column, protocol=protocol, tables=tables, negative=list(grader.negative_),
        positive=list(grader.positive_), n_train=len(split.train_ids), ids=split.ids, grades=split.y,
        distance=distance, curve_distance=xs, curves={calibration_name(g): g.calibrate(xs) for g in variants},
        model_id=grader.model_id, class_weight=grader.class_weight, healthy_below=grader.healthy_below)
    if baselines is not None and baselines.run is not None:
        from latentmed.dae import load_dae

        result.encoder = load_dae(baselines.run).config.encoder_head()
    if tsne is not False and len(split.z_all) >= 5:
        result.tsne_ids = split.ids_all
        result.tsne, result.tsne_colours = _tsne(split, labels, column if tsne is True else tsne, id_column, seed)
    return result


def _tsne(split: _Split, labels, columns: str | Sequence[str], id_column: str,
          seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """t-SNE of every labelled latent and its colour by each of ``columns`` (comma-separated names allowed)."""
    from latentmed.latent.evaluation import tsne_embedding

    cols = [columns] if isinstance(columns, str) else list(columns)
    cols = [c.strip() for spec in cols for c in spec.split(",") if c.strip()]
    df = read_labels(labels, id_column=id_column)
    missing = [c for c in cols if c not in df.columns]
    expect(not missing, f"t-SNE column(s) {missing} not in the labels; columns are {list(df.columns)}.")
    match = match_ids(split.ids_all.tolist(), df.index.tolist())
    colours = {}
    for col in cols:
        colour = np.asarray([df.at[match[i], col] for i in split.ids_all])
        if np.issubdtype(colour.dtype, np.floating) and np.allclose(colour, np.round(colour)):
            colour = colour.astype(int)
        colours[col] = colour
    return tsne_embedding(split.z_all, random_state=seed), colours


def _baseline_methods(grader, lat, labels, column: str, split: _Split, baselines: Baselines, id_column: str,
                      seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Reference rows: the same probe on raw pixels and on a random encoder's latents, and a supervised CNN."""
    from sklearn.base import clone

    from latentmed.latent.baseline import train_cnn_baseline
    from latentmed.latent.counterfactual import load_images_by_id
    from latentmed.latent.grader import calibration_name

    expect(split.train_ids, "the baselines need the grader's training ids (fit with latentmed >= this version).")
    _, y_tr, tr_ids = join_labels(lat, labels, column, split.train_ids, id_column)
    y_tr = y_tr.astype(int)
    b = baselines
    x_tr = load_images_by_id(b.data_dir, tr_ids, read=b.read)  # read: open_images options (axis, window, ...)
    x_te = load_images_by_id(b.data_dir, split.ids, size=x_tr.shape[-1], read=b.read)
    out = []

    def probe_on(name: str, f_tr: np.ndarray, f_te: np.ndarray) -> None:
        g = clone(grader).set_params(model_id=None).fit(f_tr, y_tr)
        out.append((f"{name}: {g.classifier} + {calibration_name(g)}", g.signed_distance(f_te), g.predict(f_te)))

    probe_on("raw pixels", x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1))
    if b.run is not None:
        import torch

        from latentmed.dae import DiffusionAutoencoder, load_dae

        config = load_dae(b.run).config
        torch.manual_seed(seed)
        random_dae = DiffusionAutoencoder(config).eval()
        enc = [np.concatenate([random_dae.encode(torch.as_tensor(x[i:i + 64])).numpy() for i in range(0, len(x), 64)])
               for x in (x_tr, x_te)]
        probe_on("random encoder", enc[0].astype(np.float64), enc[1].astype(np.float64))
    balanced = grader.class_weight == "balanced"
    pred = train_cnn_baseline(x_tr, y_tr, x_te, positive=grader.positive_, arch=b.arch, scale=grader.classes_,
                              epochs=b.epochs, balanced=balanced, seed=seed, progress=b.progress)
    predicted = pred.predicted
    if grader.healthy_below is not None:
        predicted = np.where(predicted < grader.healthy_below, grader.classes_.min(), predicted)
    out.append((f"CNN ({b.arch}, supervised{', balanced' if balanced else ''})", pred.detection_score, predicted))
    return out


def counterfactuals_from_run(run, grader, data_dir, ids: Sequence[str], *, grades: Sequence[float] | None = None,
                             flip: bool = False, steps: int = 50, out_dir: str | os.PathLike | None = None,
                             direction: str = "pattern", device: str = "cpu", progress: bool = False,
                             read: dict | None = None):
    """``latentmed counterfactual``: load the DAE of ``run`` and the grader, read the images, make the strips.

    ``read``: further :func:`latentmed.data.open_images` arguments (axis, window, slices, report, ...).
    """
    from latentmed.dae import load_dae
    from latentmed.latent.counterfactual import load_images_by_id, make_counterfactuals

    grader = _grader(grader)
    dae = load_dae(run, device=device)
    expect(len(ids) > 0, "no ids given; pass --ids ID1,ID2 (ids from the labels CSV).")
    x = load_images_by_id(data_dir, ids, channels=dae.config.in_channels, size=dae.config.image_size, read=read)
    return make_counterfactuals(dae, x, ids, grader, grades, steps, out_dir, flip=flip, direction=direction,
                                progress=progress)
