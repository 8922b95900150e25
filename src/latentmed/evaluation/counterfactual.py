"""Counterfactual images judged as the field judges them (DiME/ACE: Jeanneret et al. 2022/2023;
FastDiME: Weng et al. 2024; axiomatic soundness: Monteiro et al., ICLR 2023).

- **Validity**: does the counterfactual carry the asked grade, read by judges independent of the
  model that made it: the height oracle (:mod:`latentmed.evaluation.height_oracle`, exact and within
  one grade) and, as a second judge, a supervised CNN (:func:`fit_cnn_judge`).
- **Proximity**: L1 (and LPIPS, given its weights) of each counterfactual to the reconstruction
  and to the input.
- **Realism**: k-NN precision/recall (Kynkaenniemi et al. 2019) and FID of the counterfactuals
  (per asked grade, averaged) against held-out real images, in a feature space (pixel PCA plus the
  distance off it, :func:`pca_features`), next to the reconstructions' (the attainable level).
- **Composition** (Monteiro et al. Sec. 3): the null edit (the latent moved to its own grade,
  i.e. not at all) decoded like a counterfactual equals the reconstruction; its distance to the
  input is what one encode-decode cycle costs.
- **Reversibility**: a counterfactual encoded again (own ``z_sem`` and inverted ``x_T``), moved back
  to the original's distance and decoded, against the reconstruction; and the oracle grade it lands on.
- **Transition curve**: mean oracle grade (and loss) along the asked grades.

:func:`counterfactual_metrics` computes everything from arrays; :func:`evaluate_counterfactuals`
makes the images with a DAE and a grader first; :func:`counterfactual_markdown` writes the table.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from latentmed.errors import expect
from latentmed.evaluation.height_oracle import UNREADABLE, oracle_measure

GRADES = (0, 1, 2, 3)


@dataclasses.dataclass
class CounterfactualMetrics:
    """All measures of one set of counterfactuals ``[N, G]`` (N images, G asked grades)."""

    targets: list[float]
    oracle_grade: np.ndarray             # [N, G] measured Genant grade (-1: unreadable)
    oracle_loss: np.ndarray              # [N, G] measured height loss
    validity: float                      # oracle grade == asked grade (targets on the scale 0..3)
    validity_within_one: float
    validity_by_target: dict             # asked grade -> exact validity
    oracle_on_inputs: float              # the oracle's agreement with the inputs' labels (its ceiling here)
    cnn_validity: float                  # the CNN judge's predicted grade == asked grade (NaN without one)
    proximity: dict                      # l1/lpips to the reconstruction and to the input
    realism: dict                        # precision/recall/FID of counterfactuals and of reconstructions
    composition: dict                    # null edit against reconstruction and input
    reversibility: dict                  # back-and-forth against the reconstruction; oracle grade of the return
    transition: list[dict]               # per asked grade: mean oracle grade, mean loss, validity
    ceiling: dict = dataclasses.field(default_factory=dict)  # validity of a perfect generator ({} if unknown)
    floor: dict = dataclasses.field(default_factory=dict)    # validity of the unedited inputs (no generator)

    def summary(self) -> dict:
        out = dataclasses.asdict(self)
        out["oracle_grade"] = self.oracle_grade.tolist()
        out["oracle_loss"] = np.round(self.oracle_loss, 4).tolist()
        return _jsonable(out)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else round(float(x), 4)
    if isinstance(x, np.integer):
        return int(x)
    return x


def validity(grades: np.ndarray, targets: Sequence[float]) -> dict:
    """Exact and within-one validity of measured ``grades [N, G]`` against asked ``targets [G]``.

    Only targets on the Genant scale (0..3) count (G-1 and G4 are extrapolations no grade can
    match); an unreadable image (-1) is invalid.
    """
    g = np.asarray(grades)
    t = np.asarray(targets, dtype=float)
    expect(g.ndim == 2 and g.shape[1] == len(t), f"grades must be [N, {len(t)}]; got shape {g.shape}.")
    on = np.isin(t, GRADES)
    if not on.any():
        return {"exact": math.nan, "within_one": math.nan, "by_target": {}}
    gg, tt = g[:, on], np.broadcast_to(t[on], g[:, on].shape)
    readable = gg != UNREADABLE
    return {"exact": float(np.mean(gg == tt)),
            "within_one": float(np.mean(readable & (np.abs(gg - tt) <= 1))),
            "by_target": {int(tv): float(np.mean(g[:, j] == tv)) for j, tv in enumerate(t) if on[j]}}


def l1(a, b) -> np.ndarray:
    """Mean absolute difference per image over all but the first axis (image units)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    expect(a.shape == b.shape, f"L1 needs images of one shape; got {a.shape} and {b.shape}.")
    return np.abs(a - b).reshape(len(a), -1).mean(axis=1)


def _lpips(lpips, a, b) -> float:
    if lpips is None:
        return math.nan
    import torch

    with torch.no_grad():
        return float(lpips(torch.as_tensor(np.asarray(a), dtype=torch.float32),
                           torch.as_tensor(np.asarray(b), dtype=torch.float32)).mean())


def proximity(counterfactuals, reconstructions, originals, lpips: Callable | None = None) -> dict:
    """L1 (and LPIPS) of counterfactuals ``[N, G, C, H, W]`` to the reconstruction and to the input."""
    cf = np.asarray(counterfactuals)
    n, g = cf.shape[:2]
    flat = cf.reshape(n * g, *cf.shape[2:])
    rec = np.repeat(np.asarray(reconstructions), g, axis=0)
    org = np.repeat(np.asarray(originals), g, axis=0)
    return {"l1_to_reconstruction": float(l1(flat, rec).mean()), "l1_to_input": float(l1(flat, org).mean()),
            "lpips_to_reconstruction": _lpips(lpips, flat, rec), "lpips_to_input": _lpips(lpips, flat, org)}


def realism(real, generated, features: Callable | None = None, k: int = 3) -> dict:
    """Precision/recall (k-NN) and FID of ``generated`` images against ``real`` images in a feature space.

    ``features``: images -> ``[N, F]``; default :func:`pca_features` fitted on ``real``.
    """
    from latentmed.metrics.generation import frechet_feature_distance, precision_recall

    real, generated = np.asarray(real, dtype=np.float32), np.asarray(generated, dtype=np.float32)
    expect(len(real) > k and len(generated) > k,
           f"realism needs more than k={k} real and generated images; got {len(real)} and {len(generated)}.")
    features = features or pca_features(real, max(2, min(32, len(real) - 3, len(generated) - 3)))
    fr, fg = features(real), features(generated)
    pr = precision_recall(fr, fg, k=k)
    return {"precision": pr["precision"], "recall": pr["recall"], "fid": frechet_feature_distance(fr, fg),
            "n_real": len(real), "n_generated": len(generated)}


def pca_features(real, n_components: int = 32) -> Callable[[Any], np.ndarray]:
    """Pixel-PCA coordinates of ``real`` (:class:`~latentmed.metrics.generation.PixelPCA`) plus the distance
    off the PCA subspace: noise projects near the data's mean, so without the residual it would look real.
    Fewer components than images keep the FID's covariances regular."""
    from latentmed.metrics.generation import PixelPCA

    pca = PixelPCA(n_components=n_components).fit(np.asarray(real, dtype=np.float32))

    def features(x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        coords = pca.pca_.transform(x)
        residual = np.linalg.norm(x - pca.pca_.inverse_transform(coords), axis=1, keepdims=True)
        return np.concatenate([coords, residual], axis=1)

    return features


def transition_curve(grades: np.ndarray, losses: np.ndarray, targets: Sequence[float]) -> list[dict]:
    """Per asked grade: mean measured grade (unreadable left out), mean height loss, exact validity."""
    out = []
    for j, t in enumerate(targets):
        g = np.asarray(grades)[:, j]
        ok = g != UNREADABLE
        out.append({"target": float(t), "oracle_grade": float(g[ok].mean()) if ok.any() else math.nan,
                    "height_loss": float(np.nanmean(np.asarray(losses)[:, j])) if ok.any() else math.nan,
                    "validity": float(np.mean(g == t)) if t in GRADES else math.nan, "unreadable": float(np.mean(~ok))})
    return out


def counterfactual_metrics(originals, reconstructions, counterfactuals, targets: Sequence[float], *,
                           labels: Sequence[int] | None = None, null_edit=None, returned=None,
                           heldout=None, cnn: Callable | None = None, lpips: Callable | None = None,
                           features: Callable | None = None, value_range: tuple[float, float] = (-1.0, 1.0)
                           ) -> CounterfactualMetrics:
    """Every measure of the module docstring from arrays (images ``[N, C, H, W]``, counterfactuals ``[N, G, C, H, W]``).

    ``labels``: the inputs' true grades (the oracle's agreement with them is its ceiling on these
    images); ``null_edit`` ``[N, C, H, W]``: the null edit's images; ``returned`` ``[N, G, C, H, W]``: each
    counterfactual edited back to the input's grade; ``heldout``: real images never seen by the
    DAE (realism); ``cnn``: images ``[B, C, H, W]`` -> predicted grade ``[B]``. Missing inputs give NaN.
    """
    org, rec, cf = (np.asarray(a, dtype=np.float32) for a in (originals, reconstructions, counterfactuals))
    expect(cf.ndim == 5 and cf.shape[0] == len(org) and cf.shape[1] == len(targets) and cf.shape[2:] == org.shape[1:],
           f"counterfactuals must be [N, G, C, H, W] with N={len(org)} images and G={len(targets)} targets of shape "
           f"{org.shape[1:]}; got {cf.shape}.")
    n, g = cf.shape[:2]
    meas = oracle_measure(cf.reshape(n * g, *cf.shape[2:]), value_range)
    grade = np.asarray([m.grade for m in meas]).reshape(n, g)
    loss = np.asarray([m.height_loss for m in meas]).reshape(n, g)
    val = validity(grade, targets)
    nan = math.nan
    got = np.asarray([m.grade for m in oracle_measure(org, value_range)])  # the inputs as the oracle reads them
    on_inputs = float(np.mean(got == np.asarray(labels))) if labels is not None else nan
    unedited = validity(np.repeat(got[:, None], g, axis=1), targets)  # the floor: every input left as it is
    cnn_validity = nan
    if cnn is not None:
        cnn_validity = validity(np.asarray(cnn(cf.reshape(n * g, *cf.shape[2:]))).reshape(n, g), targets)["exact"]
    real = {"counterfactuals": {}, "reconstructions": {}}
    if heldout is not None and n > 3 and len(heldout) > 3:  # k-NN (k = 3) needs more than 3 images per set
        held = np.asarray(heldout, dtype=np.float32)
        on = np.isin(np.asarray(targets, dtype=float), GRADES)
        # one asked grade at a time: N distinct vertebrae each, like the reconstructions (the G edits of one
        # vertebra are near-duplicates whose k-NN balls would shrink to nothing, and recall with them)
        per = [realism(held, cf[:, j], features) for j in np.flatnonzero(on)]
        real = {"counterfactuals": {k: (float(np.mean([r[k] for r in per])) if k not in ("n_real", "n_generated")
                                        else per[0][k]) for k in per[0]} if per else {},
                "reconstructions": realism(held, rec, features)}
    composition = {"l1_null_to_reconstruction": nan, "l1_null_to_input": nan, "l1_reconstruction_to_input":
                   float(l1(rec, org).mean())}
    if null_edit is not None:
        ne = np.asarray(null_edit, dtype=np.float32)
        composition.update(l1_null_to_reconstruction=float(l1(ne, rec).mean()), l1_null_to_input=float(l1(ne, org).mean()))
    reversibility = {"l1_return_to_reconstruction": nan, "l1_return_to_input": nan, "oracle_return_equals_input": nan}
    if returned is not None:
        back = np.asarray(returned, dtype=np.float32)
        expect(back.shape == cf.shape, f"returned must have the counterfactuals' shape {cf.shape}; got {back.shape}.")
        flat = back.reshape(n * g, *cf.shape[2:])
        reversibility["l1_return_to_reconstruction"] = float(l1(flat, np.repeat(rec, g, axis=0)).mean())
        reversibility["l1_return_to_input"] = float(l1(flat, np.repeat(org, g, axis=0)).mean())
        g_back = np.asarray([m.grade for m in oracle_measure(flat, value_range)]).reshape(n, g)
        g_rec = np.asarray([m.grade for m in oracle_measure(rec, value_range)])
        reversibility["oracle_return_equals_input"] = float(np.mean(g_back == g_rec[:, None]))
    return CounterfactualMetrics(
        targets=[float(t) for t in targets], oracle_grade=grade, oracle_loss=loss, validity=val["exact"],
        validity_within_one=val["within_one"], validity_by_target=val["by_target"], oracle_on_inputs=on_inputs,
        cnn_validity=cnn_validity, proximity=proximity(cf, rec, org, lpips), realism=real, composition=composition,
        reversibility=reversibility, transition=transition_curve(grade, loss, targets),
        floor={"exact": unedited["exact"], "within_one": unedited["within_one"]})


def perfect_counterfactuals(data_dir, ids: Sequence[str], targets: Sequence[float], size: int | None = None
                            ) -> np.ndarray | None:
    """The ceiling's images: each input vertebra of a ``spine2d`` phantom re-rendered at each asked grade on
    the Genant scale (height loss in the middle of the grade's band), ``[N, G', 1, H, W]`` in [-1, 1] for
    the ``G'`` targets in 0..3; None when ``data_dir`` is not a ``spine2d`` phantom (no ``phantom.json``)."""
    import json

    from latentmed.data.labels import read_labels
    from latentmed.data.phantoms.spine2d import GRADE_LOSS_RANGES, rerender_spine2d

    settings_file = Path(data_dir) / "phantom.json"
    if not settings_file.is_file():
        return None
    settings = json.loads(settings_file.read_text())
    if settings.get("phantom") != "spine2d":
        return None
    order = {str(k): i for i, k in enumerate(read_labels(Path(data_dir) / "labels.csv").index)}
    missing = [i for i in ids if str(i) not in order]
    expect(not missing, f"{data_dir}: ids {missing[:3]} are not in its labels.csv.")
    losses = [float(np.mean(GRADE_LOSS_RANGES[int(t)])) for t in targets if t in GRADES]
    out = [[rerender_spine2d(settings, order[str(i)], loss, size)[0] for loss in losses] for i in ids]
    return np.asarray(out, dtype=np.float32)[:, :, None] * 2.0 - 1.0


def fit_cnn_judge(images, grades, *, epochs: int = 30, seed: int = 0, arch: str = "small") -> Callable[[Any], np.ndarray]:
    """A supervised CNN grade classifier (the grading table's baseline network, class-balanced) as a judge:
    returns ``images [B, C, H, W] -> predicted grade [B]``."""
    import torch

    from latentmed.train.classifier import fit_classifier, predict_logits

    y = np.asarray(grades).astype(int)
    scale = np.arange(int(y.min()), int(y.max()) + 1)
    counts = np.bincount(y - scale[0], minlength=len(scale)).astype(np.float64)
    weight = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(scale), 0.0)
    net = fit_classifier(torch.as_tensor(np.asarray(images), dtype=torch.float32), y - scale[0], arch=arch,
                         epochs=epochs, num_outputs=len(scale), class_weight=weight, seed=seed, weight_decay=1e-4)

    def judge(x) -> np.ndarray:
        logits = predict_logits(net, torch.as_tensor(np.asarray(x), dtype=torch.float32))
        return scale[logits.argmax(-1).numpy()]

    return judge


def evaluate_counterfactuals(dae, grader, images, ids: Sequence[str], targets: Sequence[float] = GRADES, *,
                             labels: Sequence[int] | None = None, steps: int = 30, direction: str = "pattern",
                             heldout=None, cnn: Callable | None = None, lpips: Callable | None = None,
                             reversibility: bool = True, batch_size: int = 16):
    """Make counterfactuals of ``images`` at ``targets`` (plus the null edit and the way back) and measure them.

    Returns ``(CounterfactualResult, CounterfactualMetrics)``. The null edit moves each latent to its
    own signed distance (a zero move) and decodes it from the same ``x_T``; the way back encodes each
    counterfactual again (``z_sem`` and inverted ``x_T``), moves it to the input's distance and decodes.
    """
    import torch

    from latentmed.latent.counterfactual import make_counterfactuals, move_direction, move_to_distance

    res = make_counterfactuals(dae, images, ids, grader, list(targets), steps, direction=direction,
                               batch_size=batch_size)
    u = move_direction(grader, direction)
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    null, back = [], []
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            xb = x[s:s + batch_size]
            z = dae.encode(xb)
            x_T = dae.encode_stochastic(xb, z, steps=steps)
            zn = z.double().numpy()
            z0 = move_to_distance(zn, grader.normal_, grader.offset_, grader.signed_distance(zn), u)
            null.append(dae.decode(torch.as_tensor(z0, dtype=z.dtype), x_T=x_T, steps=steps))
            if reversibility:
                cfb = torch.as_tensor(res.counterfactuals[s:s + batch_size])  # [B, G, C, H, W]
                b, g = cfb.shape[:2]
                flat = cfb.reshape(b * g, *cfb.shape[2:])
                zc = dae.encode(flat)
                xc = dae.encode_stochastic(flat, zc, steps=steps)
                home = np.repeat(grader.signed_distance(zn), g)
                zb = move_to_distance(zc.double().numpy(), grader.normal_, grader.offset_, home, u)
                back.append(dae.decode(torch.as_tensor(zb, dtype=z.dtype), x_T=xc, steps=steps).reshape(cfb.shape))
    metrics = counterfactual_metrics(res.originals, res.reconstructions, res.counterfactuals, list(targets),
                                     labels=labels, null_edit=torch.cat(null).numpy(),
                                     returned=torch.cat(back).numpy() if back else None, heldout=heldout, cnn=cnn,
                                     lpips=lpips)
    return res, metrics


def evaluate_counterfactuals_from_run(run, grader, data_dir, ids: Sequence[str] | None = None, *,
                                      labels=None, column: str = "genant", n: int = 16,
                                      targets: Sequence[float] = GRADES, steps: int = 30, direction: str = "pattern",
                                      heldout_dir=None, cnn_epochs: int = 30, seed: int = 0, device: str = "cpu",
                                      out_dir=None, judge: Callable | None = None):
    """``latentmed counterfactual evaluate``: load the DAE of ``run`` and the grader, pick the inputs, measure.

    ``ids``: the inputs (default: ``n`` of the grader's held-out ids, half of the lowest and half of
    the highest grade in ``labels[column]``). ``labels``: CSV with ``column`` (the inputs' true grades,
    and the CNN judge's training grades on the grader's training ids; ``cnn_epochs=0`` or no labels:
    no CNN judge, unless ``judge`` is given). ``heldout_dir``: real images the DAE never saw (realism).
    With ``out_dir``: ``metrics.md`` and ``metrics.json``. Returns ``(CounterfactualResult, CounterfactualMetrics)``.
    """
    from latentmed.dae import load_dae
    from latentmed.data import open_images
    from latentmed.data.labels import read_labels
    from latentmed.io import write_json, write_text
    from latentmed.latent.counterfactual import load_images_by_id
    from latentmed.latent.io import load_grader

    grader = grader if hasattr(grader, "normal_") else load_grader(grader)
    dae = load_dae(run, device=device)
    truth = None
    if labels is not None:
        df = read_labels(labels)
        expect(column in df.columns, f"{labels}: no column {column!r}; columns are {list(df.columns)}.")
        truth = {str(k): int(v) for k, v in df[column].dropna().items()}
    if ids is None:
        held = [str(i) for i in getattr(grader, "metadata_", {}).get("holdout_ids", [])]
        expect(held and truth is not None, "no --ids given and the grader has no held-out ids with labels; pass --ids "
                                           "and --labels, or fit the grader with --holdout.")
        graded = [i for i in held if i in truth]
        lo, hi = min(truth[i] for i in graded), max(truth[i] for i in graded)
        ids = ([i for i in graded if truth[i] == lo][:n - n // 2] + [i for i in graded if truth[i] == hi][:n // 2])
    ids = [str(i) for i in ids]
    expect(len(ids) > 0, "no ids to evaluate; pass --ids ID1,ID2.")
    size, channels = dae.config.image_size, dae.config.in_channels
    x = load_images_by_id(data_dir, ids, channels=channels, size=size)
    y = None if truth is None or not all(i in truth for i in ids) else [truth[i] for i in ids]
    if judge is None and cnn_epochs > 0 and truth is not None:
        train = [str(i) for i in getattr(grader, "metadata_", {}).get("train_ids", []) if str(i) in truth]
        expect(len(train) >= 2, "the CNN judge needs the grader's training ids in the labels; pass --cnn-epochs 0 "
                                "to leave it out.")
        judge = fit_cnn_judge(load_images_by_id(data_dir, train, channels=channels, size=size),
                              [truth[i] for i in train], epochs=cnn_epochs, seed=seed)
    held_x = None
    if heldout_dir is not None:
        root = Path(heldout_dir)
        held_x = open_images(root / "images" if (root / "images").is_dir() else root, size=size,
                             channels=channels).stack().numpy()
    res, metrics = evaluate_counterfactuals(dae, grader, x, ids, targets, labels=y, steps=steps, direction=direction,
                                            heldout=held_x, cnn=judge)
    perfect = perfect_counterfactuals(data_dir, ids, targets, size)
    if perfect is not None:  # the judge's ceiling on these vertebrae: what a perfect generator would score
        n, g = perfect.shape[:2]
        got = np.asarray([m.grade for m in oracle_measure(perfect.reshape(n * g, *perfect.shape[2:]))]).reshape(n, g)
        val = validity(got, [t for t in targets if t in GRADES])
        metrics.ceiling = {"exact": val["exact"], "within_one": val["within_one"], "by_target": val["by_target"]}
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text(out_dir / "metrics.md", counterfactual_markdown(metrics, f"Counterfactuals of {len(ids)} images, "
                                                                            f"direction {direction}"))
        write_json(out_dir / "metrics.json", {"ids": ids, "direction": direction, "steps": steps,
                                              **metrics.summary()})
    return res, metrics


def counterfactual_markdown(m: CounterfactualMetrics, title: str = "Counterfactuals", heading: str = "##") -> str:
    """The metrics as Markdown: one line per figure, validity against the oracle first, then the transition table."""
    def f(x, nd=3):
        return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"

    p, c, r = m.proximity, m.composition, m.reversibility
    rc, rr = m.realism.get("counterfactuals", {}), m.realism.get("reconstructions", {})
    n, g = m.oracle_grade.shape
    lines = [f"{heading} {title}", "",
             f"{n} inputs x {g} asked grades ({', '.join(f'G{t:g}' for t in m.targets)}); validity counts the grades "
             "on the Genant scale G0..G3.", "",
             f"- **Validity (height oracle)**: {f(m.validity)} of the counterfactuals measure exactly the asked grade; "
             f"{f(m.validity_within_one)} within one grade (by asked grade: "
             f"{', '.join(f'G{k}: {f(v, 2)}' for k, v in m.validity_by_target.items())}). The oracle agrees with "
             f"the inputs' own labels on {f(m.oracle_on_inputs)} of them.",
             *([f"- **Floor (no edit)**: the inputs themselves, left unedited, measure {f(m.floor['exact'])} exactly "
                f"and {f(m.floor['within_one'])} within one grade of the asked grades."] if m.floor else []),
             *([f"- **Ceiling (a perfect generator)**: the same vertebrae re-rendered by the phantom at each asked "
                f"grade measure {f(m.ceiling['exact'])} exactly and {f(m.ceiling['within_one'])} within one grade: "
                "the most this judge can give."] if m.ceiling else []),
             f"- **Validity (supervised CNN)**: {f(m.cnn_validity)} are classified as the asked grade.",
             f"- **Proximity**: L1 {f(p['l1_to_reconstruction'])} to the reconstruction, {f(p['l1_to_input'])} to the "
             f"input (image units, [-1, 1]); LPIPS {f(p['lpips_to_reconstruction'])} / {f(p['lpips_to_input'])}"
             f"{' (no LPIPS weights given)' if not math.isfinite(p['lpips_to_input']) else ''}.",
             f"- **Realism** (pixel-PCA features and the distance off them, against {rc.get('n_real', 'no')} "
             "held-out real images): precision "
             f"{f(rc.get('precision'))}, recall {f(rc.get('recall'))}, FID {f(rc.get('fid'), 1)}; the reconstructions "
             f"score {f(rr.get('precision'))} / {f(rr.get('recall'))} / {f(rr.get('fid'), 1)}.",
             "- **Composition**: the null edit differs from the reconstruction by L1 "
             f"{f(c['l1_null_to_reconstruction'], 4)} "
             f"(0: the edit machinery adds nothing) and from the input by {f(c['l1_null_to_input'])} (one encode-decode "
             "cycle).",
             f"- **Reversibility**: edited to each grade and back, L1 {f(r['l1_return_to_reconstruction'])} to the "
             f"reconstruction ({f(r['l1_return_to_input'])} to the input); the oracle reads the input's grade again on "
             f"{f(r['oracle_return_equals_input'])} of them.", "",
             "Transition curve (oracle along the asked grades):", "",
             "| asked grade | oracle grade (mean) | height loss (mean) | validity | unreadable |",
             "|---|---|---|---|---|"]
    lines += [f"| G{t['target']:g} | {f(t['oracle_grade'], 2)} | {f(t['height_loss'])} | {f(t['validity'], 2)} | "
              f"{f(t['unreadable'], 2)} |" for t in m.transition]
    return "\n".join(lines) + "\n"


__all__ = ["CounterfactualMetrics", "GRADES", "counterfactual_markdown", "counterfactual_metrics",
           "evaluate_counterfactuals", "evaluate_counterfactuals_from_run", "fit_cnn_judge", "l1", "pca_features",
           "perfect_counterfactuals",
           "proximity", "realism", "transition_curve", "validity"]
