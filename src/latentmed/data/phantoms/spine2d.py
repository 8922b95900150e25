"""``spine2d``: sagittal CT-like slices of the spine with a graded fracture of the centre vertebra.

Each image is a mid-sagittal slice (anterior to the left, cranial up) through a short run of
the thoracolumbar spine: vertebral bodies with a bright cortical rim and a textured trabecular
interior, darker intervertebral discs, the spinal canal with the cord, spinous processes and
soft tissue, CT-like correlated noise. The centre vertebra's height is reduced by a requested
fraction ``height_loss`` with a wedge (anterior), biconcave (middle) or crush (whole body)
shape, so that its Genant grade (:func:`latentmed.data.phantoms.genant_grade`) is known exactly.
Vertebra size, disc height and spinal curvature follow the level (T1..L5): thoracic bodies are
smaller with thin discs and kyphosis, lumbar bodies larger with thick discs and lordosis. An
adjacent vertebra can carry a fracture of its own, the confounder the grading paper reports.

The image is rendered at ``supersample`` times the output size and area-averaged, so edges are
anti-aliased. ``info["measured_height_loss"]`` is measured on that raster (heights along the
anterior, middle and posterior lines of the centre body), not copied from the request.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage

from latentmed.data.phantoms import (VERSE_GRADE_COUNTS, finish_output, fracture_flag, genant_grade,
                                     prepare_output)
from latentmed.errors import LatentmedError, expect

LEVELS = tuple([f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)])
#: Levels used as the centre vertebra by default (both neighbours are then real vertebrae).
DEFAULT_LEVELS = tuple(LEVELS[3:16])  # T4..L4
SHAPES = ("wedge", "biconcave", "crush")
#: Height-loss ranges sampled for each Genant grade (G0 keeps normal variation below 12 %).
GRADE_LOSS_RANGES = ((0.0, 0.12), (0.20, 0.25), (0.25, 0.40), (0.40, 0.60))
#: Positions (fraction of the half depth, + = anterior) where heights are measured.
MEASURE_POINTS = {"anterior": 0.8, "middle": 0.0, "posterior": -0.8}

_INTENSITY = dict(soft=0.30, fat=0.20, disc=0.40, csf=0.12, cord=0.22, cortex=0.88, posterior=0.62)


def _level_index(level: str | int) -> int:
    if isinstance(level, (int, np.integer)):
        if not 0 <= int(level) < len(LEVELS):
            raise LatentmedError(f"level index {level} out of range 0..{len(LEVELS) - 1} ({LEVELS[0]}..{LEVELS[-1]}).")
        return int(level)
    name = str(level).strip().upper()
    if name not in LEVELS:
        raise LatentmedError(f"unknown spinal level {level!r}; expected one of {', '.join(LEVELS)}.")
    return LEVELS.index(name)


def _anatomy(k: float) -> tuple[float, float, float, float]:
    """Body height, AP depth, disc height (mm) and curvature (rad per segment) at level index k."""
    f = min(max(k, -2.0), 18.0) / 16.0
    height = 16.5 + 10.5 * f
    depth = 23.0 + 14.0 * f
    disc = 3.5 + 6.5 * max(f, 0.0) ** 1.6
    # Thoracic kyphosis (rotate anteriorly going up) turns into lumbar lordosis below T12.
    curvature = math.radians(3.5) if k < 11 else math.radians(-4.5 if k >= 13 else -1.0)
    return height, depth, disc, curvature


def _loss_profile(t: np.ndarray, q: float, shape: str) -> np.ndarray:
    """Fractional height loss along the body, ``t`` in [-1 (posterior), 1 (anterior)]; max is ``q``."""
    ramp = np.clip((t + 0.8) / 1.6, 0.0, 1.0)  # 0 at the posterior line, 1 at the anterior line
    if shape == "wedge":
        return q * (0.15 + 0.85 * ramp)
    if shape == "biconcave":
        return q * np.clip(1.0 - (t / 0.95) ** 2, 0.0, 1.0)
    if shape == "crush":
        return q * (0.9 + 0.1 * ramp)
    raise LatentmedError(f"unknown fracture shape {shape!r}; expected one of {', '.join(SHAPES)}.")


def _body_sdf(X, Y, c, angle, depth, h0, q, shape, top_share, radius):
    """Signed distance (mm, < 0 inside) of a vertebral body, and its local coordinates."""
    up = np.array([math.sin(angle), -math.cos(angle)])
    ant = np.array([-math.cos(angle), -math.sin(angle)])
    dx, dy = X - c[0], Y - c[1]
    ua = dx * ant[0] + dy * ant[1]
    v = dx * up[0] + dy * up[1]
    t = np.clip(ua / (depth / 2), -1.0, 1.0)
    loss = _loss_profile(t, q, shape) * h0 if q > 0 else 0.0
    top = h0 / 2 - top_share * loss
    bottom = -h0 / 2 + (1 - top_share) * loss
    du = np.abs(ua) - (depth / 2 - radius)
    dv = np.maximum(v - top, bottom - v) + radius
    outside = np.hypot(np.maximum(du, 0), np.maximum(dv, 0))
    sdf = outside + np.minimum(np.maximum(du, dv), 0) - radius
    return sdf, ua, v, top


def _smooth_noise(rng, shape, sigma):
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return field / (field.std() + 1e-8)


def render_spine2d(height_loss: float = 0.0, level: str | int = "L1", size: int = 64,
                   rng: np.random.Generator | int | None = None, adjacent_fracture: bool = False, *,
                   shape: str | None = None, adjacent_loss: float | None = None,
                   supersample: int | None = None, noise: float | None = None, jitter: float = 0.0,
                   value_range: tuple[float, float] = (0.0, 1.0)) -> tuple[np.ndarray, dict]:
    """Render one sagittal spine slice; return ``(image [size, size] float32, info)``.

    Args:
        height_loss: fractional height loss of the centre vertebra (0 normal, 0.3 = 30 %),
            the largest of its anterior/middle/posterior losses, as in Genant's definition.
        level: spinal level of the centre vertebra (``"T1"``..``"L5"`` or index 0..16).
        size: output width and height in pixels.
        rng: ``numpy.random.Generator`` or seed; draws anatomy, pose, texture and noise.
        adjacent_fracture: also fracture the vertebra above or below (loss 25-50 %).
        shape: ``"wedge"``, ``"biconcave"`` or ``"crush"`` (default: drawn at random).
        adjacent_loss: height loss of the adjacent fracture (default: drawn in [0.25, 0.5]).
        supersample: render at this factor and area-average (default: 192 // size, at least 2).
        noise: standard deviation of the CT-like noise in [0, 1] units (default: drawn 0.02-0.04).
        jitter: crop jitter: the centre vertebra is shifted along the spine by a uniform draw in
            ``[-jitter, jitter]`` segments (body + disc height), so it is not always at the same pixels
            and a neighbour (possibly fractured) can sit nearer the image centre than it would; below
            0.5 the graded vertebra stays the one nearest the centre. 0 (default) draws nothing.
        value_range: intensity range of the returned image, ``(0, 1)`` or ``(-1, 1)``.

    ``info`` holds the requested and measured height loss, Genant grade, fracture flag, level,
    shape, the centre vertebra's reference height and measured anterior/middle/posterior
    heights (mm), pixel size (mm), the centre's pixel position, and the adjacent fracture.
    """
    q = float(height_loss)
    if not (math.isfinite(q) and 0.0 <= q <= 0.8):
        raise LatentmedError(f"height_loss must be in [0, 0.8]; got {height_loss!r}.")
    if int(size) < 16:
        raise LatentmedError(f"size must be at least 16 pixels; got {size}.")
    if not (math.isfinite(float(jitter)) and 0.0 <= float(jitter) <= 1.0):
        raise LatentmedError(f"jitter must be in [0, 1] segments (0.4: up to 40% of a body + disc); got {jitter!r}.")
    size = int(size)
    rng = np.random.default_rng(rng)
    k = _level_index(level)
    shape = shape or SHAPES[rng.choice(len(SHAPES), p=[0.5, 0.3, 0.2])]
    if shape not in SHAPES:
        raise LatentmedError(f"unknown fracture shape {shape!r}; expected one of {', '.join(SHAPES)}.")
    ss = int(supersample or max(2, 192 // size))
    R = size * ss

    # Anatomy of five consecutive vertebrae (centre at index 2) and the field of view.
    scale = rng.uniform(0.9, 1.1)
    h_c, d_c, disc_c, _ = _anatomy(k)
    fov = (2.55 * (h_c + disc_c) + 22.0) * scale * rng.uniform(0.95, 1.05)
    p = fov / R
    coords = (np.arange(R, dtype=np.float32) + 0.5) * p - fov / 2
    X, Y = np.meshgrid(coords, coords)

    bodies = []
    for j in range(-2, 3):
        h, d, disc, curv = _anatomy(k - j)  # j > 0 is cranial (smaller level index)
        var = 1.0 if j == 0 else rng.uniform(0.97, 1.03)
        bodies.append(dict(j=j, h0=h * scale * var, depth=d * scale * rng.uniform(0.96, 1.04),
                           disc=disc * scale * rng.uniform(0.85, 1.15), curv=curv + math.radians(rng.normal(0, 1.0)),
                           q=0.0, shape="wedge", top_share=1.0))
    centre = bodies[2]
    centre.update(q=q, shape=shape, top_share=rng.uniform(0.55, 1.0))
    adjacent = None
    if adjacent_fracture:
        side = int(rng.choice([-1, 1]))
        adj = bodies[2 + side]
        a_loss = float(adjacent_loss if adjacent_loss is not None else rng.uniform(0.25, 0.5))
        adj.update(q=a_loss, shape=SHAPES[rng.integers(len(SHAPES))], top_share=rng.uniform(0.55, 1.0))
        adjacent = {"position": "above" if side > 0 else "below", "height_loss": a_loss, "shape": adj["shape"]}

    # Place the bodies along the curved spinal axis, starting from the centre one.
    angle0 = math.radians(rng.normal(0, 6.0))
    centre_xy = np.array([rng.uniform(-0.04, 0.04) * fov, rng.uniform(-0.04, 0.04) * fov])
    if jitter:
        segment = centre["h0"] + centre["disc"]
        centre_xy = centre_xy + rng.uniform(-jitter, jitter) * segment * np.array([math.sin(angle0), -math.cos(angle0)])
    centre.update(c=centre_xy, angle=angle0)

    def collapse(b):  # how far a fracture lowers the body's top at its posterior wall (mm)
        return b["top_share"] * float(_loss_profile(np.array(-0.8), b["q"], b["shape"])) * b["h0"] if b["q"] else 0.0

    for direction in (+1, -1):
        prev = centre
        for idx in range(2 + direction, 2 + 3 * direction, direction):
            b = bodies[idx]
            angle = prev["angle"] - direction * 0.5 * (prev["curv"] + b["curv"])
            mid = 0.5 * (prev["angle"] + angle)
            up = np.array([math.sin(mid), -math.cos(mid)])
            upper, lower = (b, prev) if direction > 0 else (prev, b)
            gap = prev["h0"] / 2 + b["h0"] / 2 + 0.5 * (prev["disc"] + b["disc"]) - collapse(lower)
            b.update(c=prev["c"] + direction * gap * up, angle=angle)
            prev = b

    # Soft tissue: smooth background with fat anteriorly, muscle posteriorly.
    coarse = ndimage.gaussian_filter(rng.standard_normal((12, 12)), 1.5, mode="wrap")
    lowfreq = ndimage.zoom(coarse / (coarse.std() + 1e-8), R / 12, order=1).astype(np.float32)
    img = _INTENSITY["soft"] + 0.025 * lowfreq
    radius = 1.6 * scale
    sdfs, locals_ = [], []
    for b in bodies:
        sdf, ua, v, top = _body_sdf(X, Y, b["c"], b["angle"], b["depth"], b["h0"], b["q"], b["shape"],
                                    b["top_share"], radius)
        sdfs.append(sdf)
        locals_.append((ua, v))
    ua_c, v_c = locals_[2]
    ant_edge = centre["depth"] / 2
    fat = np.clip((ua_c - ant_edge - 14.0 * scale) / 4.0, 0, 1)
    img = img * (1 - fat) + (_INTENSITY["fat"] + 0.02 * lowfreq) * fat

    def blend(base, value, frac):
        return base * (1 - frac) + value * frac

    # Discs, canal and posterior elements, per segment in the local frame of the nearest body.
    canal_w = (13.0 + 3.0 * rng.uniform(-1, 1)) * scale
    for b, (ua, v) in zip(bodies, locals_):
        half = b["h0"] / 2 + b["disc"] * 0.75 + 1.0
        in_seg = np.clip((half - np.abs(v)) / p, 0, 1)
        band = np.clip((b["depth"] / 2 + 1.2 * scale - np.abs(ua)) / p, 0, 1) * in_seg
        img = blend(img, _INTENSITY["disc"] + 0.02 * lowfreq, band)
        back = -(b["depth"] / 2) - 1.5 * scale
        canal = np.clip((ua - (back - canal_w)) / p, 0, 1) * np.clip((back - ua) / p, 0, 1) * in_seg
        img = blend(img, _INTENSITY["csf"], canal)
        cord = np.clip((2.6 * scale - np.abs(ua - (back - canal_w / 2))) / p, 0, 1) * in_seg
        img = blend(img, _INTENSITY["cord"], cord)
    for b, (ua, v) in zip(bodies, locals_):  # after all canals, so no canal covers a process
        back = -(b["depth"] / 2) - 1.5 * scale
        # Spinous process / lamina: an ellipse sloping caudally behind the canal.
        slope = math.radians(25 + 30 * (1 - min(max((k - b["j"]) / 16, 0), 1)))
        length, thick = 30.0 * scale, 9.0 * scale
        s0 = back - canal_w + 2.5 * scale
        cx, cv = s0 - 0.5 * length * math.cos(slope), -0.5 * length * math.sin(slope)
        a1 = (ua - cx) * math.cos(slope) + (v - cv) * math.sin(slope)
        a2 = -(ua - cx) * math.sin(slope) + (v - cv) * math.cos(slope)
        ell = np.sqrt((a1 / (length / 2)) ** 2 + (a2 / (thick / 2)) ** 2)
        proc = np.clip((1 - ell) * thick / 2 / p, 0, 1)
        rim = np.clip((1 - ell) * thick / 2 / p, 0, 1) - np.clip(((1 - ell) * thick / 2 - 1.2 * scale) / p, 0, 1)
        img = blend(img, _INTENSITY["posterior"] - 0.1 + 0.03 * lowfreq, proc)
        img = blend(img, _INTENSITY["posterior"] + 0.1, rim)

    # Vertebral bodies: trabecular texture inside a bright cortical shell.
    density = rng.uniform(0.45, 0.6)  # bone mineral density varies between patients
    cortex_w = rng.uniform(0.9, 1.4) * scale
    trab = 0.6 * _smooth_noise(rng, (R, R), 0.5 / p) + 0.4 * _smooth_noise(rng, (R, R), 1.2 / p)
    for b, sdf, (ua, v) in zip(bodies, sdfs, locals_):
        inside = np.clip(-sdf / p + 0.5, 0, 1)
        interior = density + 0.07 * trab
        if b["q"] > 0.15:  # compressed trabeculae near the collapsed endplate look denser
            loss = _loss_profile(np.clip(ua / (b["depth"] / 2), -1, 1), b["q"], b["shape"])
            near_top = np.clip(1 - np.abs(sdf) / (3.0 * scale), 0, 1) * (v > 0)
            interior = interior + 0.25 * loss * near_top
        img = blend(img, interior, inside)
        shell = np.clip(-sdf / p + 0.5, 0, 1) * np.clip((sdf + cortex_w) / p + 0.5, 0, 1)
        img = blend(img, _INTENSITY["cortex"] + 0.03 * trab, shell)

    # Measure the centre body's heights on the raster (fraction inside along three lines).
    inside_c = np.clip(-sdfs[2] / p + 0.5, 0, 1)
    heights = _measure_heights(inside_c, centre, fov, p)
    measured = 1.0 - min(heights.values()) / centre["h0"]

    # Area-average to the output size; CT-like correlated noise; slight blur of the scanner PSF.
    out = img.reshape(size, ss, size, ss).mean(axis=(1, 3))
    out = ndimage.gaussian_filter(out, 0.35)
    sigma = float(noise if noise is not None else rng.uniform(0.02, 0.04))
    out = out + sigma * ndimage.gaussian_filter(rng.standard_normal((size, size)), 0.6) / 0.47
    out = np.clip(out, 0, 1).astype(np.float32)
    lo, hi = value_range
    out = (lo + (hi - lo) * out).astype(np.float32)

    grade = genant_grade(q)
    pix = (centre_xy + fov / 2) / fov * size
    info = dict(height_loss=q, measured_height_loss=float(measured), genant=grade, fracture=fracture_flag(grade),
                level=LEVELS[k], shape=shape, reference_height_mm=float(centre["h0"]),
                heights_mm={k2: float(v2) for k2, v2 in heights.items()}, pixel_mm=float(fov / size),
                centre_px=(float(pix[0]), float(pix[1])), angle_deg=float(math.degrees(angle0)),
                adjacent_fracture=int(adjacent is not None), adjacent=adjacent)
    return out, info


def _measure_heights(inside: np.ndarray, body: dict, fov: float, p: float) -> dict[str, float]:
    """Length (mm) inside the body along lines parallel to its axis at the measurement points."""
    angle, c = body["angle"], body["c"]
    up = np.array([math.sin(angle), -math.cos(angle)])
    ant = np.array([-math.cos(angle), -math.sin(angle)])
    step = p / 4
    s = np.arange(-body["h0"], body["h0"], step)
    out = {}
    for name, t in MEASURE_POINTS.items():
        base = c + t * body["depth"] / 2 * ant
        pts = base[None, :] + s[:, None] * up[None, :]
        rows = (pts[:, 1] + fov / 2) / p - 0.5
        cols = (pts[:, 0] + fov / 2) / p - 0.5
        vals = ndimage.map_coordinates(inside, [rows, cols], order=1, mode="constant")
        out[name] = float(np.sum(vals > 0.5) * step)
    return out


def _grade_weights(grade_weights) -> np.ndarray:
    if grade_weights is None:
        w = np.ones(4)
    elif isinstance(grade_weights, str):
        if grade_weights.strip().lower() == "verse":
            w = np.asarray(VERSE_GRADE_COUNTS, dtype=float)
        else:
            try:
                w = np.asarray([float(x) for x in grade_weights.split(",")])
            except ValueError as exc:
                raise LatentmedError(f"grade_weights: cannot read {grade_weights!r}; expected 4 numbers "
                                     "like '0.25,0.25,0.25,0.25' or 'verse'.") from exc
    else:
        w = np.asarray(list(grade_weights), dtype=float)
    if w.shape != (4,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise LatentmedError(f"grade_weights must be 4 non-negative numbers (G0..G3) with a positive sum; "
                             f"got {grade_weights!r}.")
    return w / w.sum()


def sample_spine2d_params(rng: np.random.Generator, grade_weights=None, adjacent_fracture_rate: float = 0.1,
                          levels: Sequence[str] = DEFAULT_LEVELS) -> dict:
    """Draw (height_loss, level, adjacent_fracture) for one phantom: grade first, then loss in its range."""
    w = _grade_weights(grade_weights)
    g = int(rng.choice(4, p=w))
    lo, hi = GRADE_LOSS_RANGES[g]
    loss = float(rng.uniform(lo, hi))
    if genant_grade(loss) != g:  # the closed upper end of G2 (0.40) is still G2; nudge G3's open end
        loss = float(np.nextafter(lo, 1.0)) if g == 3 else loss
    level = levels[int(rng.integers(len(levels)))]
    return dict(height_loss=loss, level=level, adjacent_fracture=bool(rng.random() < adjacent_fracture_rate))


def _draw(child: np.random.SeedSequence, weights, adjacent_fracture_rate: float, levels: Sequence[str], size: int,
          jitter: float, height_loss: float | None = None) -> tuple[np.ndarray, dict]:
    """One phantom from its seed: parameters, then the image (``height_loss``: replaces the drawn one only)."""
    rng = np.random.default_rng(child)
    params = sample_spine2d_params(rng, weights, adjacent_fracture_rate, levels)
    loss = params["height_loss"] if height_loss is None else float(height_loss)
    return render_spine2d(loss, params["level"], size, rng, params["adjacent_fracture"], jitter=jitter)


def rerender_spine2d(settings: dict, index: int, height_loss: float, size: int | None = None
                     ) -> tuple[np.ndarray, dict]:
    """Image ``index`` of a :func:`generate_spine2d` data set (``settings``: its ``phantom.json``) with the
    centre vertebra's height loss set to ``height_loss``: the same vertebra (level, neighbours, pose,
    texture) at another grade, i.e. a perfect counterfactual. Rendered at ``size`` (default the data
    set's); with the drawn loss and size it is the data set's own image."""
    expect(settings.get("phantom") == "spine2d", f"rerender_spine2d needs a spine2d phantom's settings; got "
                                                 f"phantom={settings.get('phantom')!r}.")
    expect(0 <= int(index) < int(settings["n"]), f"index {index}: the phantom has images 0..{int(settings['n']) - 1}.")
    child = np.random.SeedSequence(int(settings["seed"])).spawn(int(index) + 1)[int(index)]
    return _draw(child, _grade_weights(settings["grade_weights"]), float(settings["adjacent_fracture_rate"]),
                 tuple(settings["levels"]), int(size or settings["size"]), float(settings.get("jitter", 0.0)),
                 height_loss)


def generate_spine2d(out_dir: str | os.PathLike, n: int, size: int = 64, seed: int = 0, grade_weights=None,
                     adjacent_fracture_rate: float = 0.1, levels: Sequence[str] | None = None, *,
                     jitter: float = 0.0, overwrite: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> Path:
    """Write ``n`` phantoms to ``out_dir/images/<id>.png`` and ``out_dir/labels.csv``; return ``out_dir``.

    The generators' contract: :mod:`latentmed.data.phantoms`. ``labels.csv`` columns: ``id, image,
    height_loss, genant, fracture, level, adjacent_fracture, shape, measured_height_loss``. ``grade_weights`` are relative frequencies of G0..G3 (default equal;
    ``"verse"`` uses the VerSe counts 4124/74/102/44). Image ``i`` depends only on ``(seed, i)``,
    so a larger ``n`` extends a smaller data set. ``labels.csv`` is written last (atomically),
    so a folder with one is complete. ``progress(1, n)`` is called after each image. ``jitter``:
    crop jitter of the centre vertebra in segments (:func:`render_spine2d`).
    """
    from latentmed.io import write_image

    n, size = int(n), int(size)
    if n < 1:
        raise LatentmedError(f"n must be at least 1; got {n}.")
    if not 0.0 <= float(adjacent_fracture_rate) <= 1.0:
        raise LatentmedError(f"adjacent_fracture_rate must be in [0, 1]; got {adjacent_fracture_rate}.")
    weights = _grade_weights(grade_weights)
    levels = tuple(levels) if levels else DEFAULT_LEVELS
    for lv in levels:
        _level_index(lv)
    out_dir = prepare_output(out_dir, overwrite, ["images"])
    width = max(5, len(str(n - 1)))
    children = np.random.SeedSequence(int(seed)).spawn(n)
    rows = []
    for i, child in enumerate(children):
        image, info = _draw(child, weights, adjacent_fracture_rate, levels, size, jitter)
        image_id = f"spine2d_{i:0{width}d}"
        write_image(np.round(image * 255).astype(np.uint8), out_dir / "images" / f"{image_id}.png")
        rows.append(dict(id=image_id, image=f"images/{image_id}.png", height_loss=f"{info['height_loss']:.4f}",
                         genant=info["genant"], fracture=info["fracture"], level=info["level"],
                         adjacent_fracture=info["adjacent_fracture"], shape=info["shape"],
                         measured_height_loss=f"{info['measured_height_loss']:.4f}"))
        if progress is not None:
            progress(1, n)
    return finish_output(out_dir, rows, dict(phantom="spine2d", n=n, size=size, seed=int(seed),
                                             grade_weights=weights.tolist(),
                                             adjacent_fracture_rate=float(adjacent_fracture_rate),
                                             levels=list(levels), grade_loss_ranges=GRADE_LOSS_RANGES,
                                             jitter=float(jitter)))


__all__ = ["LEVELS", "DEFAULT_LEVELS", "SHAPES", "GRADE_LOSS_RANGES", "render_spine2d", "generate_spine2d",
           "rerender_spine2d", "sample_spine2d_params"]
