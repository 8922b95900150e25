"""``spine3d`` phantom: binary 3D lumbar-vertebra masks and per-part label maps as NIfTI, with a labels CSV.

Each mask is one vertebra built from simple solids, labelled by part (:data:`PARTS`):

1. vertebral body: elliptic cylinder with a concave waist, wedged at L5 (taller in front);
2. pedicles: two short capsules from the back of the body;
3. laminae: two thin plates closing the arch behind the vertebral foramen;
4. spinous process: thin left-right, pointing posteriorly and downwards;
5. transverse processes: lateral, swept backwards, longest at L3;
6. articular processes: superior pair rising from the pedicle-lamina junction and
   inferior pair hanging from the laminae; the facets turn from sagittal (L1) to
   more coronal (L5).

Case-to-case variation (so that no single mask fits all cases): level-dependent shape
(above), an individual size factor in [0.7, 1.3] shared by the five
levels of one spine, a per-case anisotropic scale of each axis (+-20%, the product clipped to
[0.6, 1.4]), a rotation about each axis (+-15 degrees), and left-right asymmetry (each
side's pedicle, transverse and articular process jittered separately). Axes: 0 =
inferior->superior, 1 = posterior->anterior, 2 = right->left; spacing 1 mm (identity
affine). The unit length is ``size/100`` voxels and the centre of mass sits at the cube
centre, so a cube of ``size`` holds the vertebra with a margin, as in the paper's 1 mm crops.

Files: ``spine3d_XXXX.nii.gz`` (binary mask), ``parts/spine3d_XXXX.nii.gz`` (uint8 part
labels 0..6, same grid; a sub-folder so that mask readers listing the folder do not pick
the label maps up), ``labels.csv`` (keyed by ``id``, with the ``mask`` and ``parts`` paths),
``phantom.json``.

The phantom is the project's own test bed (no data set can be downloaded here); it is
not anatomically exact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from latentmed.data.formats import write_nifti
from latentmed.data.phantoms import finish_output, prepare_output
from latentmed.errors import expect

LEVELS = ("L1", "L2", "L3", "L4", "L5")
PARTS = {1: "body", 2: "pedicle", 3: "lamina", 4: "spinous", 5: "transverse", 6: "articular"}
POSTERIOR_PARTS = (2, 3, 4, 5, 6)
# Thin parts (laminae, transverse and articular processes) keep at least this radius in voxels (2.5-voxel
# plates), so that they stay connected at small cubes. 1.25 rather than 0.75 (issue 15): at 64^3 with
# 0.75 the autoencoders learnt almost none of the arch (posterior Dice 0.20 vs 0.33 after 600 steps)
# while floor, input and overall ceiling barely moved (experiments/shape_testbed.py).
MIN_RADIUS_VOXELS = 1.25
PARTS_DIR = "parts"
CSV_COLUMNS = ("id", "mask", "parts", "level", "individual", "person", "body_width", "body_depth", "body_height",
               "transverse_length", "spinous_length", "scale_0", "scale_1", "scale_2",
               "rotation_0", "rotation_1", "rotation_2", "volume")


def _capsule(grid: tuple[np.ndarray, np.ndarray, np.ndarray], a, b, radius: float,
             squash: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Voxels within ``radius`` of segment a-b (distances scaled per axis by ``squash``)."""
    p = [g / s for g, s in zip(grid, squash)]
    a = np.asarray(a, float) / np.asarray(squash)
    b = np.asarray(b, float) / np.asarray(squash)
    ab = b - a
    denom = float(ab @ ab) or 1e-9
    h = ((p[0] - a[0]) * ab[0] + (p[1] - a[1]) * ab[1] + (p[2] - a[2]) * ab[2]) / denom
    h = np.clip(h, 0.0, 1.0)
    d2 = sum((p[i] - a[i] - h * ab[i]) ** 2 for i in range(3))
    return d2 <= radius ** 2


def _rotation(angles: np.ndarray) -> np.ndarray:
    """Rotation matrix: about axis 2 (flexion), then axis 1 (lateral bend), then axis 0 (axial)."""
    out = np.eye(3)
    for axis, angle in zip((2, 1, 0), angles[::-1]):
        i, j = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[i, i] = r[j, j] = np.cos(angle)
        r[i, j], r[j, i] = -np.sin(angle), np.sin(angle)
        out = r @ out
    return out


def vertebra_parts(size: int, level: int, rng: np.random.Generator, person: float | None = None
                   ) -> tuple[np.ndarray, dict]:
    """Part label map (``uint8[size,size,size]``, labels :data:`PARTS`) of level ``level`` (0=L1 .. 4=L5).

    ``person``: the individual's size factor (shared by the levels of one spine; drawn from ``rng``
    in [0.8, 1.2] when ``None``; :func:`spine3d_cases` draws it in [0.7, 1.3]). Returns the labels
    and the case parameters. Where parts overlap, the lower label wins.
    """
    expect(size >= 16, f"size={size}: the spine3d phantom needs a cube of at least 16 voxels.")
    expect(0 <= level < len(LEVELS), f"level={level}: expected 0 (L1) .. 4 (L5).")
    u = size / 100.0
    c = (size - 1) / 2.0
    thin = MIN_RADIUS_VOXELS / u

    def jitter(scale: float = 0.08) -> float:
        return float(1.0 + rng.uniform(-scale, scale))

    def radius(r: float) -> float:
        return max(r, thin)

    # Per-case pose and anisotropic scale: the solids are drawn in local coordinates q = R^T p / s.
    person = jitter(0.2) if person is None else float(person)
    scale = np.clip(np.array([jitter(0.2) for _ in range(3)]) * person, 0.6, 1.4)  # 1.4: still fits the cube
    angles = np.deg2rad(rng.uniform(-15.0, 15.0, size=3))
    rot = _rotation(angles)
    axes = [np.arange(size, dtype=np.float32) - c for _ in range(3)]
    p = np.stack(np.meshgrid(*axes, indexing="ij"), 0).reshape(3, -1)
    q = (rot.T @ p) / (scale[:, None] * u)  # local coordinates in units
    grid = tuple(q[i].reshape((size,) * 3).astype(np.float32) for i in range(3))
    zz, yy, xx = grid

    width = 13.0 * (1.0 + 0.09 * level) * jitter(0.12)  # half-width (left-right): bodies widen caudally,
    depth = 10.5 * (1.0 + 0.04 * level) * jitter(0.12)  # more than they deepen  # half-depth (antero-posterior)
    height = 11.0 * (1.0 + 0.02 * level) * jitter(0.12)  # half-height
    waist = 0.10 * jitter(0.5)
    wedge = (0.04 + 0.05 * (level == 4)) * jitter(0.5)  # anterior taller than posterior (lordosis), most at L5
    ap_body = 12.0  # body centre lies anterior of the cube centre
    zc = rng.uniform(-1.0, 1.0)

    zrel = (zz - zc) / (height * (1.0 + wedge * (yy - ap_body) / depth))
    shrink = 1.0 - waist * (1.0 - np.clip(zrel, -1, 1) ** 2)
    body = (np.abs(zrel) <= 1.0) & (((yy - ap_body) / (depth * shrink)) ** 2 + (xx / (width * shrink)) ** 2 <= 1.0)

    # Posterior arch: pedicles from the back of the body, thin laminae meeting in the midline.
    arch_z = zc + 0.25 * height
    y_back = ap_body - depth * 0.85
    ped_len = 5.5 * jitter()
    y_ped_end = y_back - ped_len
    y_lam_end = y_ped_end - 7.0 * jitter()
    lam_r = radius(1.3 * jitter())
    pedicles = np.zeros_like(body)
    laminae = np.zeros_like(body)
    transverse = np.zeros_like(body)
    articular = np.zeros_like(body)
    trans_len = (12.0 + 4.0 * (1.0 - abs(level - 2) / 2.0)) * jitter(0.1)
    facet = np.deg2rad(20.0 + 12.0 * level)  # facet plane turns from sagittal (L1) towards coronal (L5)
    for side in (-1.0, 1.0):
        ped_x = (0.58 + 0.02 * level) * width * jitter(0.05)
        ped_r = radius((2.6 + 0.15 * level) * jitter())
        pedicles |= _capsule(grid, (arch_z, y_back + 2, side * ped_x), (arch_z, y_ped_end, side * ped_x),
                             ped_r, squash=(1.4, 1.0, 1.0))
        laminae |= _capsule(grid, (arch_z, y_ped_end, side * ped_x), (arch_z - 1.5, y_lam_end, 0.0),
                            lam_r, squash=(2.4, 1.0, 1.0))
        # Transverse process: lateral from the pedicle-lamina junction, swept backwards; each side its own.
        length = trans_len * jitter(0.1)
        sweep = np.deg2rad(15.0 + 6.0 * rng.standard_normal())
        start = (arch_z, y_ped_end + 1.0, side * ped_x)
        end = (arch_z + 1.0 * jitter(1.0), y_ped_end + 1.0 - length * np.sin(sweep),
               side * (ped_x + length * np.cos(sweep)))
        transverse |= _capsule(grid, start, end, radius(1.6 * jitter()), squash=(1.3, 1.0, 1.0))
        # Articular processes: superior up and outwards, inferior down from the lamina, facet-oriented.
        sup_h = 6.5 * jitter(0.12)
        art_r = radius(1.5 * jitter())
        sup_start = (arch_z + 1.0, y_ped_end - 0.5, side * ped_x)
        sup_end = (arch_z + sup_h, y_ped_end - 0.5 - 2.0 * np.cos(facet), side * (ped_x + 1.5 * np.sin(facet)))
        articular |= _capsule(grid, sup_start, sup_end, art_r, squash=(1.0, 1.0, 1.4))
        inf_x = 0.6 * ped_x
        inf_start = (arch_z - 1.0, y_ped_end - 3.5, side * inf_x)
        inf_end = (arch_z - 1.0 - sup_h * jitter(0.12), y_ped_end - 4.5, side * inf_x)
        articular |= _capsule(grid, inf_start, inf_end, art_r, squash=(1.0, 1.0, 1.4))

    # Spinous process: posterior and downwards, thin left-right; shorter and more horizontal at L5.
    spin_len = 10.0 * (1.0 + 0.04 * (2 - abs(level - 2)) - 0.1 * (level == 4)) * jitter()
    tilt = np.deg2rad(25.0 - 3.0 * level + 8.0 * rng.standard_normal())
    spin_start = (arch_z - 1.5, y_lam_end, 0.0)
    spin_end = (arch_z - 1.5 - spin_len * np.sin(tilt), y_lam_end - spin_len * np.cos(tilt), 0.0)
    spinous = _capsule(grid, spin_start, spin_end, radius(2.2 * jitter()), squash=(1.6, 1.0, 0.55))

    labels = np.zeros((size,) * 3, dtype=np.uint8)
    for value, part in ((1, body), (2, pedicles), (3, laminae), (4, spinous), (5, transverse), (6, articular)):
        labels[part & (labels == 0)] = value
    from scipy import ndimage

    # One bone: thin parts can touch their neighbour only at a corner after voxelisation, so keep
    # the largest 26-connected component (at 64^3 about one case in seven loses 1-12 voxels).
    components, n_components = ndimage.label(labels > 0, structure=np.ones((3, 3, 3)))
    if n_components > 1:
        labels[components != np.argmax(np.bincount(components.ravel())[1:]) + 1] = 0
    # Put the centre of mass at the cube centre (crops are centred on it, as in the paper).
    shift = np.round(c - np.asarray(ndimage.center_of_mass(labels > 0))).astype(int)
    labels = ndimage.shift(labels, shift, order=0, mode="constant", cval=0)  # no wrap-around
    params = {"body_width": 2 * width * u, "body_depth": 2 * depth * u, "body_height": 2 * height * u,
              "transverse_length": trans_len * u, "spinous_length": spin_len * u,
              **{f"scale_{i}": float(scale[i]) for i in range(3)},
              **{f"rotation_{i}": float(np.rad2deg(angles[i])) for i in range(3)},
              "volume": int((labels > 0).sum())}
    return labels, params


def vertebra_mask(size: int, level: int, rng: np.random.Generator, person: float | None = None
                  ) -> tuple[np.ndarray, dict]:
    """One vertebra mask (``bool[size,size,size]``) of level ``level`` (0=L1 .. 4=L5) and its parameters."""
    labels, params = vertebra_parts(size, level, rng, person)
    return labels > 0, params


def parts_path(mask_path: str | Path) -> Path:
    """Where :func:`generate_spine3d` writes the part labels of ``mask_path``."""
    mask_path = Path(mask_path)
    return mask_path.parent / PARTS_DIR / mask_path.name


def spine3d_cases(n: int, size: int = 64, seed: int = 0) -> Iterator[tuple[str, np.ndarray, dict]]:
    """Yield ``n`` cases ``(file name, part labels uint8[size^3], CSV row)`` in :func:`generate_spine3d`'s order.

    Individuals get five levels each (L1..L5 in order) and one size factor; deterministic for ``seed``.
    """
    expect(n >= 1, f"n={n}: expected at least 1 mask.")
    rng = np.random.default_rng(seed)
    person_rng, person = None, 1.0
    for i in range(n):
        individual, level = divmod(i, len(LEVELS))
        if level == 0:
            person_rng = np.random.default_rng(rng.integers(2**63))
            person = float(person_rng.uniform(0.7, 1.3))
        labels, params = vertebra_parts(size, level, np.random.default_rng(person_rng.integers(2**63)), person)
        name = f"spine3d_{i:04d}.nii.gz"
        yield name, labels, {"id": name[: -len(".nii.gz")], "mask": name, "parts": f"{PARTS_DIR}/{name}", "level": LEVELS[level], "individual": individual, "person": round(person, 3),
                             **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in params.items()}}


def generate_spine3d(out_dir: str | os.PathLike, n: int, size: int = 64, seed: int = 0, *, overwrite: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> Path:
    """Write ``n`` vertebra masks ``spine3d_XXXX.nii.gz``, their part labels and ``labels.csv``; return ``out_dir``.

    The generators' contract: :mod:`latentmed.data.phantoms` (``labels.csv`` columns: :data:`CSV_COLUMNS`).
    Individuals get five levels each (L1..L5 in order), so ``n=10`` is two individuals.
    Deterministic for a given ``seed``.
    """
    expect(n >= 1, f"n={n}: expected at least 1 mask.")
    out = prepare_output(out_dir, overwrite, [PARTS_DIR])
    rows = []
    for name, labels, row in spine3d_cases(n, size, seed):
        write_nifti(labels, parts_path(out / name), dtype=np.uint8)
        write_nifti(labels > 0, out / name, dtype=np.uint8)
        rows.append(row)
        if progress is not None:
            progress(1, n)
    return finish_output(out, rows, dict(phantom="spine3d", n=n, size=size, seed=int(seed), spacing_mm=1.0,
                                         parts=PARTS))
