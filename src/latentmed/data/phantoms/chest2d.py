"""``chest2d``: chest-radiograph-like phantom images with masks and multi-label clinical labels.

A posteroanterior (PA) view in radiological convention: the patient's LEFT is on the
image's RIGHT. Each image shows soft tissue, the rib cage, two lung fields (dark, with
vessel texture and optional ribs), the mediastinum/spine, the heart (shifted to the
patient's left) and the two hemidiaphragm domes.

Label map written to ``masks/<id>.png`` (uint8):

====  =====================================================================
0     background (everything else)
1     left lung (patient's left = image right), aerated part
2     right lung (patient's right = image left), aerated part
3     heart
====  =====================================================================

Fluid (effusion) is not aerated lung, so it is *not* in labels 1/2; opacities are inside
the lung fields and stay labelled as lung. The heart overrides the lungs where they overlap.

Clinical labels (``labels.csv``, 0/1 each, multi-label):

- ``cardiomegaly``: cardiothoracic ratio CTR > 0.5, with CTR computed from the mask by
  :func:`cardiothoracic_ratio` (maximal horizontal heart width over the maximal horizontal
  extent of the lung fields, i.e. the inner thoracic width). The target CTR is drawn away
  from 0.5 (``ctr_margin``) so that pixelation never flips the label.
- ``effusion``: fluid with a meniscus blunting the costophrenic angle of one or both lungs.
- ``opacity``: one or more dense (consolidation-like) patches inside a lung.

The CSV also has ``ctr`` (from the mask), ``effusion_side`` and ``opacity_side``
(``left``/``right``/``both``/empty). ``image`` and ``mask`` are paths relative to the CSV.

Two variants (:data:`STYLES`): ``classic`` (the original phantom: little variety, obvious findings;
a classifier on 50 images reaches macro AUC ~0.96, so extra data has no room to help) and
``varied``: patient pose (shift, scale, rotation), breathing (diaphragm level),
exposure (gamma, contrast, brightness, noise level), anatomical variety (thorax shape,
mediastinum, heart position and shape) and subtler findings (CTR nearer 0.5, small effusions,
faint opacities), with the heart between the lungs above the diaphragm. In ``varied`` the
cardiomegaly label is still ``CTR > 0.5`` measured on the (rotated) mask, so a few images lie
close to the threshold, as in real data. ``experiments/chest2d_headroom.py`` checks that a
classifier on 50 real images leaves room for extra data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from latentmed.data.phantoms import finish_output, prepare_output
from latentmed.errors import expect
from latentmed.io import write_image

LABELS = ("cardiomegaly", "effusion", "opacity")
MASK_LABELS = {0: "background", 1: "left_lung", 2: "right_lung", 3: "heart"}
LEFT_LUNG, RIGHT_LUNG, HEART = 1, 2, 3


@dataclass(frozen=True)
class Chest2DStyle:
    """Ranges the renderer draws from (uniform on ``(lo, hi)``); see :data:`STYLES`.

    Pose/breathing/exposure fields at their defaults (0 / None / False) draw nothing, so the
    ``classic`` style renders exactly the original images.
    """

    shift: float = 0.04
    cy: tuple[float, float] = (-0.1, -0.04)
    rx: tuple[float, float] = (0.6, 0.7)
    ry: tuple[float, float] = (0.72, 0.78)
    mediastinum: tuple[float, float] = (0.09, 0.13)
    d_right: tuple[float, float] = (0.4, 0.46)
    d_left: tuple[float, float] = (0.44, 0.5)
    dome: tuple[float, float] = (0.18, 0.26)
    ctr_normal: float = 0.34  # lower end of a normal CTR
    ctr_enlarged: float = 0.62  # upper end of an enlarged CTR
    ctr_margin: float = 0.04
    heart_aspect: tuple[float, float] = (0.7, 0.85)
    heart_dx: tuple[float, float] = (0.06, 0.12)
    heart_lift: float = 0.45  # how far (in heart half-heights) the heart centre sits above the dome line
    effusion_rise: tuple[float, float] = (0.12, 0.22)
    meniscus: float = 0.25
    fluid: float = 0.66
    opacity_gain: tuple[float, float] = (0.4, 0.4)
    opacity_radius: tuple[float, float] = (0.08, 0.14)
    rotation_deg: float = 0.0
    scale: tuple[float, float] | None = None
    shift_y: float = 0.0
    breathing: float = 0.0
    exposure: bool = False
    noise: tuple[float, float] | None = None


STYLES = {
    "classic": Chest2DStyle(),
    "varied": Chest2DStyle(shift=0.06, cy=(-0.1, -0.02), rx=(0.55, 0.72), ry=(0.66, 0.82), mediastinum=(0.07, 0.13),
                           ctr_normal=0.40, ctr_enlarged=0.60, ctr_margin=0.015, heart_aspect=(0.65, 0.9),
                           heart_dx=(0.02, 0.08), heart_lift=1.3, effusion_rise=(0.1, 0.22), meniscus=0.2,
                           fluid=0.66, opacity_gain=(0.35, 0.55), opacity_radius=(0.1, 0.16), rotation_deg=8.0,
                           scale=(0.85, 1.08), shift_y=0.05, breathing=0.07, exposure=True, noise=(0.015, 0.045)),
}


def _style(variant: str | Chest2DStyle) -> Chest2DStyle:
    if isinstance(variant, Chest2DStyle):
        return variant
    expect(variant in STYLES, f"chest2d variant {variant!r} is unknown; expected one of {sorted(STYLES)}.")
    return STYLES[variant]


@dataclass
class Chest2DSample:
    """One rendered phantom: ``image`` float32 [H, W] in [0, 1], ``mask`` uint8 [H, W], labels."""

    image: np.ndarray
    mask: np.ndarray
    labels: dict[str, int]
    ctr: float
    effusion_side: str
    opacity_side: str


def cardiothoracic_ratio(mask: np.ndarray) -> float:
    """CTR from a label map: max horizontal heart width / horizontal extent of both lungs.

    Widths count pixels (``max_x - min_x + 1``). Raises when a structure is missing.
    """
    mask = np.asarray(mask)
    heart_cols = np.flatnonzero((mask == HEART).any(axis=0))
    lung_cols = np.flatnonzero(((mask == LEFT_LUNG) | (mask == RIGHT_LUNG)).any(axis=0))
    expect(heart_cols.size > 0 and lung_cols.size > 0,
           "cardiothoracic_ratio: the mask needs heart (label 3) and lung (labels 1, 2) pixels.")
    return float((heart_cols[-1] - heart_cols[0] + 1) / (lung_cols[-1] - lung_cols[0] + 1))


def _side(rng: np.random.Generator) -> str:
    return str(rng.choice(["left", "right", "both"], p=[0.4, 0.4, 0.2]))


def render_chest2d(size: int = 64, rng: np.random.Generator | int | None = None, *,
                   cardiomegaly: bool | None = None, effusion: bool | None = None, opacity: bool | None = None,
                   prevalence: float = 0.35, ribs: bool = True, noise: float = 0.02,
                   ctr_margin: float | None = None, variant: str | Chest2DStyle = "classic") -> Chest2DSample:
    """Render one phantom chest radiograph (see the module docstring for the conventions).

    Labels left as ``None`` are drawn with probability ``prevalence``. ``variant``: ``classic``,
    ``varied`` or a :class:`Chest2DStyle`; ``ctr_margin`` overrides the style's; ``noise`` is used
    unless the style draws a noise level.
    """
    from scipy.ndimage import gaussian_filter

    expect(isinstance(size, int) and size >= 32, f"render_chest2d: size must be an int >= 32, got {size!r}.")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    draw = lambda v: bool(rng.random() < prevalence) if v is None else bool(v)  # noqa: E731
    cardiomegaly, effusion, opacity = draw(cardiomegaly), draw(effusion), draw(opacity)

    st = _style(variant)
    ctr_margin = st.ctr_margin if ctr_margin is None else ctr_margin
    # pixel-centre coordinates in [-1, 1]; y grows downwards
    c = (np.arange(size) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(c, c, indexing="ij")
    scale = 1.0
    if st.rotation_deg or st.scale is not None:  # patient pose: anatomy drawn in rotated, scaled coordinates
        theta = np.deg2rad(rng.uniform(-st.rotation_deg, st.rotation_deg))
        scale = rng.uniform(*st.scale) if st.scale is not None else 1.0
        y0 = rng.uniform(-st.shift_y, st.shift_y)
        x, y = ((np.cos(theta) * x + np.sin(theta) * (y - y0)) / scale,
                (-np.sin(theta) * x + np.cos(theta) * (y - y0)) / scale)

    # thorax (inner rib cage) ellipse and body outline
    cx = rng.uniform(-st.shift, st.shift)
    cy = rng.uniform(*st.cy)
    rx, ry = rng.uniform(*st.rx), rng.uniform(*st.ry)
    thorax = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1
    body = ((x - cx) / (rx + 0.2)) ** 2 + ((y - cy - 0.2) / (ry + 0.35)) ** 2 < 1

    # hemidiaphragm domes: y_d(x) lower at the lateral costophrenic angles, higher in the middle
    mediastinum = rng.uniform(*st.mediastinum)
    d_right, d_left = rng.uniform(*st.d_right), rng.uniform(*st.d_left)  # right dome sits higher (liver)
    dome = rng.uniform(*st.dome)
    if st.breathing:  # inspiration depth moves both domes together
        b = rng.uniform(-st.breathing, st.breathing)
        d_right, d_left = d_right + b, d_left + b

    def diaphragm(side_sign: float, base: float) -> np.ndarray:
        u = np.clip((x - cx) * side_sign / rx, 0, 1)  # 0 at midline, 1 at lateral wall
        return cy + base - dome * np.sin(np.pi * np.clip(0.25 + 0.75 * u, 0, 1)) + 0.12 * u ** 2

    below_right = y > diaphragm(-1.0, d_right)
    below_left = y > diaphragm(1.0, d_left)
    right_field = thorax & (x < cx - mediastinum) & ~below_right  # image left = patient's right
    left_field = thorax & (x > cx + mediastinum) & ~below_left

    # heart: ellipse resting on the left hemidiaphragm, shifted to the patient's left (image right)
    lung_cols = np.flatnonzero((right_field | left_field).any(axis=0))
    thoracic_w = (lung_cols[-1] - lung_cols[0] + 1) / size * 2 / scale  # in anatomy units
    ctr_target = (rng.uniform(0.5 + ctr_margin, st.ctr_enlarged) if cardiomegaly
                  else rng.uniform(st.ctr_normal, 0.5 - ctr_margin))
    hw = ctr_target * thoracic_w / 2
    hh = hw * rng.uniform(*st.heart_aspect)
    hx = cx + rng.uniform(*st.heart_dx)
    hy = cy + d_left - dome * 0.75 - hh * st.heart_lift
    heart = ((x - hx) / hw) ** 2 + ((y - hy) / hh) ** 2 < 1

    # effusion: fluid below a meniscus rising towards the lateral wall (blunted costophrenic angle)
    fluid = np.zeros_like(thorax)
    effusion_side = _side(rng) if effusion else ""
    for side, field, sign, base in (("right", right_field, -1.0, d_right), ("left", left_field, 1.0, d_left)):
        if effusion_side in (side, "both"):
            u = np.clip((x - cx) * sign / rx, 0, 1)
            level = cy + base - rng.uniform(*st.effusion_rise) - st.meniscus * u ** 3
            fluid |= thorax & (x * sign > (cx * sign + mediastinum)) & (y > level) & ~heart & \
                (field | (y > diaphragm(sign, base)) & (y < diaphragm(sign, base) + 0.05))

    # image intensities (attenuation-like: bright = dense)
    img = np.full((size, size), 0.06)
    img[body] = 0.55
    img[thorax] = 0.5
    lungs = right_field | left_field
    img[lungs] = 0.2
    # vessel texture fading towards the periphery
    tex = gaussian_filter(rng.normal(size=(size, size)), sigma=size / 48)
    hilum = np.exp(-(((np.abs(x - cx) - 0.2) / 0.25) ** 2 + ((y - cy + 0.05) / 0.35) ** 2))
    img[lungs] += (0.05 * tex + 0.1 * hilum)[lungs]
    if ribs:
        for k in range(7):
            y0 = cy - ry * 0.85 + k * 0.24 + rng.uniform(-0.02, 0.02)
            arc = y0 + 0.35 * (np.abs(x - cx) / rx) ** 2 - 0.1 * np.abs(x - cx) / rx
            img[(np.abs(y - arc) < 0.03) & thorax] += 0.07
    spine = (np.abs(x - cx) < mediastinum * 0.7) & body
    img[spine] = np.maximum(img[spine], 0.62)
    below = (below_left & (x > cx)) | (below_right & (x <= cx))
    img[below & body] = 0.72
    img[heart] = 0.78
    img[fluid] = st.fluid

    opacity_side = ""
    patches = np.zeros_like(thorax)
    if opacity:
        opacity_side = _side(rng)
        for side, field in (("right", right_field), ("left", left_field)):
            if opacity_side not in (side, "both"):
                continue
            aerated = field & ~heart & ~fluid
            ys, xs = np.nonzero(aerated)
            for _ in range(int(rng.integers(1, 3))):
                i = rng.integers(len(ys))
                py, px = y[ys[i], xs[i]], x[ys[i], xs[i]]
                r = rng.uniform(*st.opacity_radius)
                gain = st.opacity_gain[0] if st.opacity_gain[0] == st.opacity_gain[1] else rng.uniform(*st.opacity_gain)
                blob = np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * r ** 2))
                img += gain * blob * aerated
                patches |= (blob > 0.5) & aerated
    img = gaussian_filter(img, sigma=size / 96)
    if st.exposure:  # film/detector response: gamma, contrast, brightness
        gamma, contrast, bright = np.exp(rng.uniform(-0.3, 0.3)), rng.uniform(0.8, 1.15), rng.uniform(-0.06, 0.06)
        img = bright + contrast * np.clip(img, 0, 1) ** gamma
    if st.noise is not None:
        noise = rng.uniform(*st.noise)
    img = img + noise * rng.normal(size=img.shape)
    img = np.clip(img, 0, 1).astype(np.float32)

    mask = np.zeros((size, size), dtype=np.uint8)
    mask[right_field & ~fluid] = RIGHT_LUNG
    mask[left_field & ~fluid] = LEFT_LUNG
    mask[heart] = HEART
    ctr = cardiothoracic_ratio(mask)
    labels = {"cardiomegaly": int(ctr > 0.5), "effusion": int(effusion), "opacity": int(opacity)}
    return Chest2DSample(img, mask, labels, ctr, effusion_side, opacity_side)


def generate_chest2d(out_dir: str | os.PathLike, n: int, size: int = 64, seed: int = 0, *,
                     prevalence: float = 0.35, ribs: bool = True, noise: float = 0.02, bit_depth: int = 8,
                     variant: str | Chest2DStyle = "classic", overwrite: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> Path:
    """Write ``n`` phantoms to ``out_dir`` (``images/``, ``masks/``, ``labels.csv``); return ``out_dir``.

    The generators' contract: :mod:`latentmed.data.phantoms`. ``bit_depth`` 16 writes 16-bit PNGs
    (to exercise the 16->8-bit preprocessing). Image ``i`` is rendered from
    ``np.random.default_rng([seed, i])`` so subsets are stable.
    """
    expect(isinstance(n, int) and n >= 1, f"generate_chest2d: n must be a positive int, got {n!r}.")
    expect(bit_depth in (8, 16), f"generate_chest2d: bit_depth must be 8 or 16, got {bit_depth!r}.")
    out = prepare_output(out_dir, overwrite, ["images", "masks"])
    rows = []
    width = max(4, len(str(n - 1)))
    for i in range(n):
        s = render_chest2d(size, np.random.default_rng([seed, i]), prevalence=prevalence, ribs=ribs, noise=noise,
                           variant=variant)
        sid = f"chest_{i:0{width}d}"
        scale = 65535 if bit_depth == 16 else 255
        write_image(np.round(s.image * scale).astype(np.uint16 if bit_depth == 16 else np.uint8),
                    out / "images" / f"{sid}.png")
        write_image(s.mask, out / "masks" / f"{sid}.png")
        rows.append({"id": sid, "image": f"images/{sid}.png", "mask": f"masks/{sid}.png", **s.labels,
                     "ctr": f"{s.ctr:.4f}", "effusion_side": s.effusion_side, "opacity_side": s.opacity_side})
        if progress is not None:
            progress(1, n)
    style = variant if isinstance(variant, str) else "custom"
    return finish_output(out, rows, dict(phantom="chest2d", n=n, size=size, seed=int(seed), prevalence=prevalence,
                                         ribs=ribs, noise=noise, bit_depth=bit_depth, variant=style))


__all__ = ["LABELS", "MASK_LABELS", "STYLES", "Chest2DSample", "Chest2DStyle", "cardiothoracic_ratio",
           "generate_chest2d", "render_chest2d"]
