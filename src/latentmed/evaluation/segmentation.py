"""Segmentation evaluation of two folders of NIfTI masks (truth vs prediction), matched by file name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from latentmed.errors import LatentmedError
from latentmed.metrics.segmentation import SEGMENTATION_METRICS, segmentation_scores


def _nifti_files(folder: Path, what: str) -> dict[str, Path]:
    from latentmed.data.formats import file_stem, is_nifti

    if not folder.is_dir():
        raise LatentmedError(f"{what} folder {folder} does not exist (expected a folder of .nii/.nii.gz masks).")
    files = {file_stem(p.name): p for p in sorted(folder.iterdir()) if p.is_file() and is_nifti(p)}
    if not files:
        raise LatentmedError(f"{what} folder {folder} holds no .nii/.nii.gz files.")
    return files


def _load_mask(path: Path, label: int | None) -> tuple[np.ndarray, np.ndarray]:
    from latentmed.data.volumes import Volume

    data, affine = Volume.nifti(path).load()
    if label is not None:
        data = data == label
    spacing = np.linalg.norm(affine[:3, :3], axis=0)[: data.ndim]
    return data, spacing


def match_mask_files(truth_dir: str | os.PathLike, pred_dir: str | os.PathLike, *, strict: bool = True
                     ) -> list[tuple[str, Path, Path]]:
    """Pairs ``(case, truth_path, pred_path)`` of NIfTI masks with the same name (``.nii``/``.nii.gz`` ignored).

    With ``strict`` a truth mask without prediction is an error; predictions without truth are ignored.
    """
    truth = _nifti_files(Path(truth_dir), "truth")
    pred = _nifti_files(Path(pred_dir), "prediction")
    missing = sorted(set(truth) - set(pred))
    if missing and strict:
        raise LatentmedError(f"{len(missing)} truth mask(s) have no prediction in {pred_dir} (e.g. "
                             f"{', '.join(missing[:3])}); name predictions like the truth files, or pass "
                             "strict=False (--allow-missing) to score only the matched cases.")
    cases = sorted(set(truth) & set(pred))
    if not cases:
        raise LatentmedError(f"no file names in common between {truth_dir} and {pred_dir}.")
    return [(c, truth[c], pred[c]) for c in cases]


def evaluate_segmentation_folders(truth_dir: str | os.PathLike, pred_dir: str | os.PathLike, *,
                                  label: int | None = None, hausdorff: bool = True, strict: bool = True,
                                  progress: bool = True) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Per-case Dice, VS, SEN, SPEC, NMI, kappa (and Hausdorff-95 in mm) of NIfTI mask pairs.

    ``label``: score ``mask == label`` (multi-label files); without it, masks must be binary.
    Hausdorff-95 uses the voxel size of the truth's affine. Returns ``(rows, means)``; cases
    with an infinite Hausdorff distance (one mask empty) are counted in ``hausdorff95_inf``
    and left out of its mean.
    """
    from tqdm.auto import tqdm

    rows = []
    for case, tp, pp in tqdm(match_mask_files(truth_dir, pred_dir, strict=strict), desc="segmentation",
                             disable=not progress):
        t, spacing = _load_mask(tp, label)
        p, _ = _load_mask(pp, label)
        if t.shape != p.shape:
            raise LatentmedError(f"case {case}: truth {tp.name} has shape {t.shape} but prediction {pp.name} has "
                                 f"{p.shape}; resample the prediction onto the truth's grid.")
        try:
            # a batch of one with a channel axis: a 2D or 3D mask stays what it is whatever its first size
            scores = segmentation_scores(t[None, None], p[None, None], hausdorff=hausdorff, spacing=spacing)
        except LatentmedError as exc:
            raise LatentmedError(f"case {case}: {exc} (use --label K for multi-label masks).") from None
        rows.append({"case": case, **{k: float(v[0]) for k, v in scores.items()}})
    means: dict[str, float] = {"n": float(len(rows))}
    for key in SEGMENTATION_METRICS:
        means[key] = float(np.mean([r[key] for r in rows]))
    if hausdorff:
        finite = [r["hausdorff95"] for r in rows if np.isfinite(r["hausdorff95"])]
        means["hausdorff95"] = float(np.mean(finite)) if finite else float("nan")
        means["hausdorff95_inf"] = float(len(rows) - len(finite))
    return rows, means
