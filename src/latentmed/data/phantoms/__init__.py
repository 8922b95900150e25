"""Phantoms: synthetic images whose ground truth is known exactly (the project's test bed).

Submodules (imported on first use, so ``import latentmed.data.phantoms`` stays cheap):

- :mod:`~latentmed.data.phantoms.spine2d`: sagittal CT-like slices of three stacked vertebrae
  with a graded compression fracture of the centre vertebra (Genant grade, fracture flag).
- :mod:`~latentmed.data.phantoms.chest2d`: chest-radiograph-like images with lung/heart masks
  and multi-label findings.
- :mod:`~latentmed.data.phantoms.spine3d`: 3D lumbar vertebra masks with part labels (NIfTI).

One contract for the generators ``generate_<name>(out_dir, n, size, seed, ..., overwrite=False,
progress=None) -> out_dir``: files go to ``out_dir`` (``images/<id>.png``, ``masks/<id>.png``,
``<id>.nii.gz``, ...), ``labels.csv`` has one row per item keyed by its ``id`` (first column) with
the files' paths relative to ``out_dir`` (``image``, ``mask``, ``parts``), ``phantom.json`` the
settings; ``labels.csv`` is written last, so a folder with one is complete. A non-empty
``out_dir`` is refused unless ``overwrite``; ``progress(1, n)`` is called after each item (the
library's ``progress(advance, total)`` convention);
item ``i`` depends only on ``(seed, i)`` (spine2d, chest2d) or on ``seed`` (spine3d).

The Genant semiquantitative scale (Genant et al., J Bone Miner Res 1993) grades a vertebral
fracture by the largest reduction of anterior, middle or posterior height:
G0 normal (< 20 %), G1 mild (20-25 %), G2 moderate (25-40 %), G3 severe (> 40 %).
Genant calls reductions below 20 % normal or borderline; we follow that, so G0 means a loss
below 20 %. The fracture flag used by the grading papers (G0 vs G2/G3) is ``genant >= 2``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from latentmed.errors import LatentmedError

#: Height-loss thresholds (fractions) between Genant grades 0|1, 1|2 and 2|3.
GENANT_THRESHOLDS = (0.20, 0.25, 0.40)
#: Grade counts of the VerSe data set (Husseini et al.), handy as ``grade_weights``.
VERSE_GRADE_COUNTS = (4124, 74, 102, 44)

_SUBMODULES = ("spine2d", "spine3d", "chest2d")


def genant_grade(height_loss: float | np.ndarray) -> int | np.ndarray:
    """Genant grade (0..3) of a fractional vertebral height loss (0.3 = 30 % lower).

    G0: loss < 0.20; G1: 0.20 <= loss < 0.25; G2: 0.25 <= loss <= 0.40; G3: loss > 0.40.
    Works on scalars (returns ``int``) and arrays (returns an int array).
    """
    loss = np.asarray(height_loss, dtype=float)
    if np.any(~np.isfinite(loss)) or np.any(loss < 0) or np.any(loss > 1):
        raise LatentmedError(
            f"height_loss must be a fraction in [0, 1] (0.3 means 30 % height loss); got {height_loss!r}."
        )
    t1, t2, t3 = GENANT_THRESHOLDS
    grade = (loss >= t1).astype(int) + (loss >= t2).astype(int) + (loss > t3).astype(int)
    return int(grade) if grade.ndim == 0 else grade


def fracture_flag(genant: int | np.ndarray) -> int | np.ndarray:
    """Binary fracture label of the grading papers: 1 for Genant grade 2 or 3, else 0."""
    flag = (np.asarray(genant) >= 2).astype(int)
    return int(flag) if flag.ndim == 0 else flag


def prepare_output(out_dir: str | os.PathLike, overwrite: bool, subfolders: Sequence[str] = ()) -> Path:
    """The output folder of a generator, created with ``subfolders``; a non-empty one only with ``overwrite``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LatentmedError(f"{out} is a file; the phantom generators write a folder.")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise LatentmedError(f"{out} exists and is not empty; choose a new folder or pass overwrite=True "
                             "(--overwrite).")
    for sub in ("", *subfolders):
        (out / sub).mkdir(parents=True, exist_ok=True)
    return out


def finish_output(out_dir: Path, rows: list[dict], settings: dict) -> Path:
    """Write ``phantom.json`` (``settings``) and then ``labels.csv`` (``rows``, keyed by ``id``); return ``out_dir``."""
    from latentmed.io import write_csv, write_json

    if not rows or next(iter(rows[0])) != "id":
        raise LatentmedError("phantom rows must start with their 'id'.")
    write_json(out_dir / "phantom.json", settings)
    write_csv(out_dir / "labels.csv", rows)  # last: a folder with labels.csv is complete
    return out_dir


def __getattr__(name: str) -> Any:
    # Lazy submodules: ``phantoms.spine2d`` imports on first access, not at package import.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GENANT_THRESHOLDS", "VERSE_GRADE_COUNTS", "genant_grade", "fracture_flag", "prepare_output",
           "finish_output"]
