"""A height oracle for sagittal spine images: Genant's semi-quantitative grade measured, not learned.

It judges counterfactuals independently of every model that made them (DiME/ACE, Jeanneret et
al. 2022, judge with an independent classifier; here the judge is a measurement). From one image:

1. **Spine axis**: the rotation (within +-20 deg) that makes the column profile sharpest (the
   vertebral column and the canal run straight along it).
2. **Centre body's AP extent**: the column profile of the central rows; the posterior wall borders
   the dark canal, the anterior wall the soft tissue (half-level crossings).
3. **Heights** along three lines parallel to the axis, at 0.8 of the half depth anterior, at the
   centre and at 0.8 posterior (the phantom's and the usual six-point morphometry's lines): each
   profile is fitted by a blurred piecewise-constant model of three bodies (each with a bright
   cortical rim at its endplates) and the discs between them, by least squares with the levels
   solved linearly (variable projection). The body edges are sub-pixel.
4. **Genant grade** (Genant et al. 1993, J Bone Miner Res 8:1137): height loss = 1 - (smallest of
   the centre body's anterior, middle, posterior heights) / reference height; the reference is the
   adjacent vertebrae's height (their mean; the larger when they disagree by over 15%, i.e. one
   of them is itself fractured). G0 < 20%, G1 20-25%, G2 25-40%, G3 > 40% (the thresholds of
   :func:`latentmed.data.phantoms.genant_grade`, which the phantom's labels follow).

Validated against rendered phantoms with known grades (``experiments/counterfactuals.md``,
:func:`validate_height_oracle`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
from scipy import ndimage

from latentmed.errors import LatentmedError, expect

#: Lines where heights are measured, as a fraction of the half depth (+ anterior), as the phantom's.
LINES = {"anterior": 0.8, "middle": 0.0, "posterior": -0.8}
_ANGLES = np.arange(-20.0, 20.5, 1.0)
_STEP = 0.5  # profile sampling step (original pixels)


@dataclasses.dataclass(frozen=True)
class HeightMeasurement:
    """Heights (pixels) of the centre vertebral body and its Genant grade as measured on one image."""

    anterior: float
    middle: float
    posterior: float
    reference: float        # adjacent vertebrae's height (pixels)
    height_loss: float      # 1 - min(anterior, middle, posterior) / reference, clipped to [0, 1]
    grade: int              # Genant grade 0..3
    angle_deg: float        # spine axis angle found
    disc_contrast: float    # how much darker the centre body's discs are than its endplates ([0, 1] units); ~0: no discs seen

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def genant_from_loss(loss) -> np.ndarray:
    """Genant grade of height losses (G0 < 0.20 <= G1 < 0.25 <= G2 <= 0.40 < G3), any shape, clipped to [0, 1]."""
    from latentmed.data.phantoms import genant_grade

    return np.asarray(genant_grade(np.clip(np.asarray(loss, dtype=float), 0.0, 1.0)))


def _to_unit(image, value_range) -> np.ndarray:
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    expect(x.ndim == 2 and min(x.shape) >= 16 and x.shape[0] == x.shape[1],
           f"the height oracle needs one square grayscale image [H, W] or [1, H, W] of at least 16 px; got shape "
           f"{tuple(np.shape(image))}.")
    lo, hi = (float(v) for v in value_range)
    expect(hi > lo, f"value_range must be (low, high) with high > low; got {value_range!r}.")
    expect(np.all(np.isfinite(x)), "the image has NaN or infinite values.")
    return (x - lo) / (hi - lo)


def _sample(img: np.ndarray, angle_deg: float, u: np.ndarray, v: np.ndarray, centre) -> np.ndarray:
    """Image values at frame coordinates (u anterior, v cranial; pixels from ``centre``), cubic spline."""
    a = math.radians(angle_deg)
    up = (math.sin(a), -math.cos(a))
    ant = (-math.cos(a), -math.sin(a))
    x = centre[0] + u * ant[0] + v * up[0]
    y = centre[1] + u * ant[1] + v * up[1]
    # continuous coordinates (pixel i spans [i, i+1]) -> array indices
    return ndimage.map_coordinates(img, [y - 0.5, x - 0.5], order=1, mode="nearest")


def _axis_angle(img: np.ndarray, centre) -> float:
    """Angle (deg) of the spine axis: the rotation with the sharpest column profile."""
    n = img.shape[0]
    u = np.arange(-0.42 * n, 0.42 * n + 1e-9, _STEP)
    v = np.arange(-0.3 * n, 0.3 * n + 1e-9, _STEP)
    U, V = np.meshgrid(u, v)
    scores = []
    for a in _ANGLES:
        col = _sample(img, a, U, V, centre).mean(axis=0)
        scores.append(float(np.sum(np.diff(col) ** 2)))
    k = int(np.argmax(scores))
    if 0 < k < len(_ANGLES) - 1:  # parabolic refinement
        s0, s1, s2 = scores[k - 1], scores[k], scores[k + 1]
        den = s0 - 2 * s1 + s2
        if den < 0:
            return float(_ANGLES[k] + 0.5 * (s0 - s2) / den * (_ANGLES[1] - _ANGLES[0]))
    return float(_ANGLES[k])


def _ap_extent(img: np.ndarray, angle: float, centre) -> tuple[float, float]:
    """(centre u, half depth) of the centre body along the anterior axis (pixels)."""
    n = img.shape[0]
    u = np.arange(-0.45 * n, 0.45 * n + 1e-9, _STEP)
    v = np.arange(-0.12 * n, 0.12 * n + 1e-9, _STEP)
    U, V = np.meshgrid(u, v)
    col = ndimage.gaussian_filter1d(_sample(img, angle, U, V, centre).mean(axis=0), 0.5 / _STEP)
    mid = np.abs(u) <= 0.06 * n
    body = float(np.median(col[mid]))
    canal = (u < -0.12 * n) & (u > -0.38 * n)
    post_level = float(col[canal].min())
    front = (u > 0.22 * n) & (u < 0.42 * n)
    ant_level = float(np.median(col[front]))
    i0 = int(np.argmin(np.abs(u)))

    def crossing(level: float, step: int) -> float:
        half = 0.5 * (body + level)
        i = i0
        while 0 < i < len(u) - 1 and col[i] > half:
            i += step
        j = i - step  # last inside sample
        c0, c1 = col[j], col[i]
        frac = (c0 - half) / (c0 - c1) if c0 != c1 else 0.5
        return float(u[j] + step * _STEP * frac)

    post = crossing(post_level, -1)
    ant = crossing(ant_level, +1)
    return 0.5 * (ant + post), 0.5 * (ant - post)


def _dips(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local minima of a profile and their prominences (the discs are the deep ones)."""
    from scipy.signal import find_peaks

    idx, props = find_peaks(-f, prominence=0.02)
    return idx, props["prominences"]


def _strongest(v: np.ndarray, dips: tuple[np.ndarray, np.ndarray], lo: float, hi: float,
               at_least: float = 0.0, nearest: bool = False) -> int | None:
    """The most prominent dip with ``lo <= v <= hi`` and prominence >= ``at_least`` (``None`` if none);
    ``nearest``: the one nearest ``lo`` among those at least half as prominent as the most prominent."""
    idx, prom = dips
    inside = (v[idx] >= lo) & (v[idx] <= hi) & (prom >= at_least)
    if not inside.any():
        return None
    idx, prom = idx[inside], prom[inside]
    if nearest:
        return int(idx[prom >= 0.5 * prom.max()][0])
    return int(idx[np.argmax(prom)])


def _edge(f: np.ndarray, v: np.ndarray, dip: int, step: int, rise: float) -> float:
    """Sub-pixel body edge next to disc ``dip`` on side ``step`` (+1 cranial).

    Walk out of the disc until the profile has risen by half the disc's prominence ``rise`` and on to
    the endplate rim's peak; the edge is where the profile rises fastest on that walk, after it left
    the disc's floor (the inflection of a blurred step is the edge, whatever the levels and the blur;
    a collapsed endplate leaves a broad floor of disc intensity, which the walk crosses).
    """
    i = dip
    while 0 <= i + step < len(f) and f[i] < f[dip] + 0.5 * rise:
        i += step
    while 0 <= i + step < len(f) and f[i + step] > f[i]:
        i += step
    floor = dip
    while floor != i and f[floor + step] < f[dip] + 0.15 * rise:
        floor += step
    seg = f[floor:i + 1] if step > 0 else f[i:floor + 1][::-1]  # from the disc's floor outwards
    if len(seg) < 3:
        return float(v[floor] + step * _STEP * (len(seg) - 1) / 2)
    g = np.diff(seg)  # g[k] is the slope at (k + 0.5) samples out from the floor
    k = int(np.argmax(g))
    off = k + 0.5
    if 0 < k < len(g) - 1:
        den = g[k - 1] - 2 * g[k] + g[k + 1]
        if den < 0:
            off += 0.5 * (g[k - 1] - g[k + 1]) / den
    return float(v[floor] + step * _STEP * off)


def _body(f: np.ndarray, v: np.ndarray, lower: int, upper: int, prom: dict) -> float:
    """Height (pixels) of the body between discs ``lower`` and ``upper`` (sample indices)."""
    return _edge(f, v, upper, -1, prom[upper]) - _edge(f, v, lower, +1, prom[lower])


def measure_heights(image, value_range: tuple[float, float] = (-1.0, 1.0)) -> HeightMeasurement:
    """Measure the centre vertebral body's heights in one sagittal image and grade it (module docstring)."""
    img = _to_unit(image, value_range)
    n = img.shape[0]
    centre = (n / 2.0, n / 2.0)
    angle = _axis_angle(img, centre)
    uc, half = _ap_extent(img, angle, centre)
    expect(half > 0.05 * n, f"the height oracle found no vertebral body at the image centre (depth {2 * half:.1f} px).")
    v = np.arange(-0.5 * n + 0.5, 0.5 * n - 0.5 + 1e-9, _STEP)
    profiles = {}
    for name, t in LINES.items():
        band = [uc + t * half + du for du in (-0.5, 0.0, 0.5)]
        profiles[name] = np.mean([_sample(img, angle, np.full_like(v, u), v, centre) for u in band], axis=0)
    # Discs are the deep minima of the profiles, found at the scale of a disc (so that at high
    # resolution a body's interior between its two bright rims is not taken for one) and first on the
    # mean over the body's whole depth (the discs span it; the trabecular texture averages out). The
    # centre body's lower disc barely moves with a fracture (the top endplate collapses): the deepest
    # minimum 0.02-0.28 n below the centre. Its upper disc is the deepest 0.1-0.4 n above (a body
    # collapsed to 40% plus its disc spans about 0.14 n); the neighbours' far discs 0.17-0.4 n
    # further out, if in view. Each line then takes its own minima near these (+-0.06 n below,
    # +-0.12 n above: a wedge or a biconcave endplate moves the top along the body).
    span = [uc + t * half for t in np.linspace(-0.85, 0.85, 9)]
    whole = np.mean([_sample(img, angle, np.full_like(v, u), v, centre) for u in span], axis=0)
    coarse = 0.02 * n / _STEP
    at = _dips(ndimage.gaussian_filter1d(whole, coarse))
    anchor = _strongest(v, at, -0.28 * n, -0.02 * n)
    top = None if anchor is None else _strongest(v, at, v[anchor] + 0.1 * n, v[anchor] + 0.4 * n)
    if top is None:
        raise LatentmedError("the height oracle found no pair of discs around the centre vertebra (is this a centred "
                             "sagittal spine image, cranial up?).")
    heights, neighbours, contrast = {}, [], 0.0
    for name, f in profiles.items():
        dips = _dips(ndimage.gaussian_filter1d(f, coarse))
        f = ndimage.gaussian_filter1d(f, 0.006 * n / _STEP)  # edges on the lightly smoothed profile
        prom = dict(zip(dips[0].tolist(), dips[1].tolist()))
        lower = _strongest(v, dips, v[anchor] - 0.06 * n, v[anchor] + 0.06 * n)
        upper = None if lower is None else _strongest(v, dips, max(v[top] - 0.12 * n, v[lower] + 0.1 * n),
                                                      v[top] + 0.12 * n)
        if upper is None:
            continue  # this line is left out; the others still measure the body
        if name == "middle":
            contrast = float(min(prom[lower], prom[upper]))
        heights[name] = _body(f, v, lower, upper, prom)
        strong = 0.5 * min(prom[lower], prom[upper])
        below = _strongest(v, dips, v[lower] - 0.4 * n, v[lower] - 0.17 * n, strong)
        above = _strongest(v, dips, v[upper] + 0.17 * n, v[upper] + 0.4 * n, strong)
        if below is not None:
            neighbours.append(("below", _body(f, v, below, lower, prom)))
        if above is not None:
            neighbours.append(("above", _body(f, v, upper, above, prom)))
    if not heights:
        raise LatentmedError("the height oracle found the centre vertebra's discs on none of its three lines.")
    by_side = {side: float(np.median([h for s, h in neighbours if s == side]))
               for side in ("below", "above") if any(s == side for s, _ in neighbours)}
    ref = list(by_side.values())
    if len(ref) == 2 and min(ref) < 0.85 * max(ref):
        reference = max(ref)  # one neighbour is itself fractured
    elif ref:
        reference = float(np.mean(ref))
    else:
        reference = max(heights.values())  # no neighbour in view: the body's own largest height
    # Genant's other reference, the body's own largest (posterior, for a wedge) height: a body is never lower
    # than its own unbroken wall, so a neighbour measured short (a merged disc) cannot fake a fracture
    reference = max(reference, max(heights.values()))
    loss = float(np.clip(1.0 - min(heights.values()) / reference, 0.0, 1.0))
    return HeightMeasurement(anterior=heights.get("anterior", math.nan), middle=heights.get("middle", math.nan),
                             posterior=heights.get("posterior", math.nan),
                             reference=reference, height_loss=loss, grade=int(genant_from_loss(loss)),
                             angle_deg=angle, disc_contrast=contrast)


#: Grade of an image the oracle cannot read (no pair of discs found): never equal to an asked grade.
UNREADABLE = -1


def _unreadable(angle: float = math.nan) -> HeightMeasurement:
    nan = math.nan
    return HeightMeasurement(nan, nan, nan, nan, nan, UNREADABLE, angle, 0.0)


def oracle_measure(images, value_range: tuple[float, float] = (-1.0, 1.0)) -> list[HeightMeasurement]:
    """:func:`measure_heights` of each image of ``[N, H, W]`` or ``[N, 1, H, W]`` (numpy or torch).

    An image whose discs the oracle cannot find gets grade :data:`UNREADABLE` (-1) and NaN heights
    instead of an error, so that a broken counterfactual counts as invalid.
    """
    x = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    expect(x.ndim in (3, 4), f"images must be [N, H, W] or [N, 1, H, W]; got shape {x.shape}.")
    if x.ndim == 4:
        expect(x.shape[1] == 1, f"the height oracle reads grayscale images (1 channel); got {x.shape[1]} channels.")
        x = x[:, 0]
    out = []
    for im in x:
        try:
            out.append(measure_heights(im, value_range))
        except LatentmedError as exc:
            if "shape" in str(exc) or "value_range" in str(exc) or "NaN" in str(exc):
                raise
            out.append(_unreadable())
    return out


def oracle_grade(images, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """Measured Genant grade (int array ``[N]``, -1 where unreadable) of each image."""
    return np.asarray([m.grade for m in oracle_measure(images, value_range)], dtype=int)


def validate_height_oracle(n: int = 200, size: int = 32, seed: int = 12345, levels: Sequence[str] | None = None,
                           adjacent_fracture_rate: float = 0.1) -> dict:
    """The oracle against rendered ``spine2d`` phantoms of known grade (equal grade mix).

    Images are drawn as :func:`latentmed.data.phantoms.spine2d.generate_spine2d` draws them (image
    ``i`` from ``SeedSequence(seed)``'s ``i``-th child; a seed the demo never uses), at all levels
    T1..L5 by default. Returns ``rows`` (one per true grade and ``all``: n, exact agreement,
    within one grade, unreadable fraction, mean |measured - true height loss|), the ``confusion``
    matrix (true rows G0..G3, measured columns G0..G3 then unreadable) and the per-image arrays.
    The true height loss is the phantom's ``measured_height_loss`` (on its supersampled raster).
    """
    from latentmed.data.phantoms.spine2d import LEVELS, render_spine2d, sample_spine2d_params

    levels = tuple(levels) if levels else LEVELS
    true_g, true_loss, got = [], [], []
    for child in np.random.SeedSequence(int(seed)).spawn(int(n)):
        rng = np.random.default_rng(child)
        p = sample_spine2d_params(rng, None, adjacent_fracture_rate, levels)
        image, info = render_spine2d(p["height_loss"], p["level"], size, rng, p["adjacent_fracture"])
        true_g.append(info["genant"])
        true_loss.append(info["measured_height_loss"])
        got.append(oracle_measure(image[None], value_range=(0.0, 1.0))[0])
    true_g, true_loss = np.asarray(true_g), np.asarray(true_loss)
    grade = np.asarray([m.grade for m in got])
    loss = np.asarray([m.height_loss for m in got])
    rows = []
    for name, sel in [(f"G{g}", true_g == g) for g in range(4)] + [("all", np.ones(len(true_g), bool))]:
        ok = sel & (grade != UNREADABLE)
        rows.append({"grade": name, "n": int(sel.sum()),
                     "exact": float(np.mean(grade[sel] == true_g[sel])) if sel.any() else math.nan,
                     "within_one": float(np.mean((grade[sel] != UNREADABLE) & (np.abs(grade[sel] - true_g[sel]) <= 1)))
                     if sel.any() else math.nan,
                     "unreadable": float(np.mean(grade[sel] == UNREADABLE)) if sel.any() else math.nan,
                     "loss_mae": float(np.mean(np.abs(loss[ok] - true_loss[ok]))) if ok.any() else math.nan})
    confusion = np.zeros((4, 5), dtype=int)
    for t, g in zip(true_g, grade):
        confusion[t, g if g != UNREADABLE else 4] += 1
    return {"size": int(size), "n": int(n), "seed": int(seed), "levels": list(levels), "rows": rows,
            "confusion": confusion.tolist(), "true_grade": true_g.tolist(), "measured_grade": grade.tolist(),
            "true_loss": true_loss.round(4).tolist(), "measured_loss": np.round(loss, 4).tolist()}


__all__ = ["HeightMeasurement", "LINES", "UNREADABLE", "genant_from_loss", "measure_heights", "oracle_grade",
           "oracle_measure", "validate_height_oracle"]
