"""``spine3d`` phantom: binary 3D lumbar-vertebra masks as NIfTI with a labels CSV.

Each mask is one vertebra built from simple solids: a vertebral body (elliptic cylinder
with a concave waist), two pedicles, two laminae closing the arch behind the vertebral
foramen, a spinous process pointing posteriorly and downwards, and two transverse
processes. Sizes and angles depend on the level (L1-L5: the body grows caudally, the
transverse processes are longest at L3) and vary between individuals (a per-case
random scale of each part). Axes: 0 = inferior->superior, 1 = posterior->anterior,
2 = right->left; spacing 1 mm (identity affine). The unit length is ``size/72`` voxels
and the centre of mass sits at the cube centre, so a cube of ``size`` holds the vertebra with a
margin, as in the paper's 1 mm crops.

The phantom is the project's own test bed (no data set can be downloaded here); it is
not anatomically exact.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from latentmed.errors import expect
from latentmed.io import atomic_path, write_text

LEVELS = ("L1", "L2", "L3", "L4", "L5")
CSV_COLUMNS = ("file", "level", "individual", "body_width", "body_depth", "body_height",
               "transverse_length", "spinous_length", "volume")


def _capsule(grid: tuple[np.ndarray, np.ndarray, np.ndarray], a: np.ndarray, b: np.ndarray, radius: float,
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


def vertebra_mask(size: int, level: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One vertebra mask (``bool[size,size,size]``) of level ``level`` (0=L1 .. 4=L5) and its parameters."""
    expect(size >= 16, f"size={size}: the spine3d phantom needs a cube of at least 16 voxels.")
    u = size / 72.0
    c = (size - 1) / 2.0
    zz, yy, xx = np.meshgrid(*(np.arange(size, dtype=np.float32) - c for _ in range(3)), indexing="ij")
    grid = (zz, yy, xx)

    def jitter(scale: float = 0.08) -> float:
        return float(1.0 + rng.uniform(-scale, scale))

    grow = 1.0 + 0.04 * level  # bodies widen caudally
    person = jitter(0.06)  # overall individual size
    width = 14.0 * u * grow * person * jitter()  # half-width (left-right)
    depth = 10.5 * u * grow * person * jitter()  # half-depth (antero-posterior)
    height = 11.0 * u * (1.0 + 0.02 * level) * person * jitter()  # half-height
    waist = 0.08 * jitter(0.5)
    ap_body = 12.0 * u  # body centre lies anterior of the cube centre
    zc = rng.uniform(-1.0, 1.0) * u

    # Vertebral body: elliptic cylinder along axis 0 with a concave waist.
    zrel = (zz - zc) / height
    shrink = 1.0 - waist * (1.0 - np.clip(zrel, -1, 1) ** 2)
    body = ((np.abs(zrel) <= 1.0)
            & (((yy - ap_body) / (depth * shrink)) ** 2 + (xx / (width * shrink)) ** 2 <= 1.0))

    # Posterior arch: pedicles from the back of the body, laminae meeting in the midline.
    arch_z = zc + 0.25 * height
    ped_x = 0.62 * width
    ped_r = 3.2 * u * jitter()
    y_back = ap_body - depth * 0.85
    ped_len = 6.0 * u * jitter()
    y_ped_end = y_back - ped_len
    lam_r = 2.6 * u * jitter()
    y_lam_end = y_ped_end - 7.0 * u * jitter()
    parts = [body]
    for side in (-1.0, 1.0):
        parts.append(_capsule(grid, (arch_z, y_back + 2 * u, side * ped_x), (arch_z, y_ped_end, side * ped_x),
                              ped_r, squash=(1.4, 1.0, 1.0)))
        parts.append(_capsule(grid, (arch_z, y_ped_end, side * ped_x), (arch_z - 1.5 * u, y_lam_end, 0.0),
                              lam_r, squash=(1.8, 1.0, 1.0)))

    # Spinous process: posterior and downwards, flattened left-right.
    spin_len = 10.0 * u * (1.0 + 0.03 * (2 - abs(level - 2))) * jitter()
    tilt = np.deg2rad(25.0 + 8.0 * rng.standard_normal())
    spin_end = (arch_z - 1.5 * u - spin_len * np.sin(tilt), y_lam_end - spin_len * np.cos(tilt), 0.0)
    parts.append(_capsule(grid, (arch_z - 1.5 * u, y_lam_end, 0.0), spin_end, 2.4 * u * jitter(),
                          squash=(1.8, 1.0, 0.7)))

    # Transverse processes: lateral from the pedicle-lamina junction, longest at L3.
    trans_len = (13.0 + 4.0 * (1.0 - abs(level - 2) / 2.0)) * u * jitter(0.12)
    trans_angle = np.deg2rad(15.0 + 6.0 * rng.standard_normal())  # swept backwards
    for side in (-1.0, 1.0):
        start = (arch_z, y_ped_end + 1.5 * u, side * ped_x)
        end = (arch_z + 1.0 * u, y_ped_end + 1.5 * u - trans_len * np.sin(trans_angle),
               side * (ped_x + trans_len * np.cos(trans_angle)))
        parts.append(_capsule(grid, start, end, 2.2 * u * jitter(), squash=(1.2, 1.0, 1.0)))

    mask = np.logical_or.reduce(parts)
    # Put the centre of mass at the cube centre (crops are centred on it, as in the paper).
    from scipy import ndimage

    shift = np.round(c - np.asarray(ndimage.center_of_mass(mask))).astype(int)
    mask = np.roll(mask, tuple(shift), axis=(0, 1, 2))
    params = {"body_width": 2 * width, "body_depth": 2 * depth, "body_height": 2 * height,
              "transverse_length": trans_len, "spinous_length": spin_len, "volume": int(mask.sum())}
    return mask, params


def save_mask_nifti(mask: np.ndarray, path: str | Path, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Path:
    """Atomically write a binary mask as uint8 NIfTI with a diagonal affine of ``spacing``."""
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(mask, dtype=np.uint8), np.diag([*map(float, spacing), 1.0]))
    img.header.set_zooms(tuple(float(s) for s in spacing))
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)


def generate_spine3d(out_dir: str | Path, n: int, size: int = 64, seed: int = 0) -> Path:
    """Write ``n`` vertebra masks ``spine3d_XXXX.nii.gz`` and ``labels.csv`` to ``out_dir``; return the CSV path.

    Individuals get five levels each (L1..L5 in order), so ``n=10`` is two individuals.
    Deterministic for a given ``seed``.
    """
    expect(n >= 1, f"n={n}: expected at least 1 mask.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    person_rng = None
    for i in range(n):
        individual, level = divmod(i, len(LEVELS))
        if level == 0:
            person_rng = np.random.default_rng(rng.integers(2**63))
        mask, params = vertebra_mask(size, level, np.random.default_rng(person_rng.integers(2**63)))
        name = f"spine3d_{i:04d}.nii.gz"
        save_mask_nifti(mask, out_dir / name)
        rows.append({"file": name, "level": LEVELS[level], "individual": individual,
                     **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in params.items()}})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return write_text(out_dir / "labels.csv", buf.getvalue())
