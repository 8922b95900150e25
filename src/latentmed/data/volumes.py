"""3D volumes (NIfTI via nibabel, DICOM series via pydicom) as arrays with their RAS affine.

A :class:`Volume` loads lazily; NaN/inf voxels are an error or replaced (``nan_to``). How volumes
are cut into 2D slices: :mod:`latentmed.data.slicing`; DICOM grouping: :mod:`latentmed.data.dicom`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from latentmed.data.dicom import group_dicom_series, load_dicom_series
from latentmed.data.formats import file_stem, nifti_affine, nifti_shape, open_nifti
from latentmed.data.notices import reading
from latentmed.errors import LatentmedError

def parse_nan_to(value) -> float | str | None:
    """``None``, a number, or ``"min"`` (the volume's smallest finite value)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "error")):
        return None
    if isinstance(value, str) and value.strip().lower() == "min":
        return "min"
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise LatentmedError(f"nan_to {value!r}: expected a number (e.g. 0) or 'min'.") from None
    if not np.isfinite(out):
        raise LatentmedError(f"nan_to {value!r}: expected a finite number (e.g. 0) or 'min'.")
    return out


def replace_nonfinite(data: np.ndarray, nan_to, where) -> int:
    """Replace NaN/inf voxels in place by ``nan_to`` (a number or ``"min"``); return how many there were.

    With ``nan_to=None`` any NaN/inf voxel is an error naming ``where``.
    """
    bad = ~np.isfinite(data)
    n = int(bad.sum())
    if n == 0:
        return 0
    if nan_to is None:
        raise LatentmedError(f"{where}: {n} of {data.size} voxels are NaN or infinite; pass nan_to=0 or "
                             "nan_to='min' (CLI: --nan-to 0 | --nan-to min) to replace them, or fix the file.")
    if nan_to == "min":
        if n == data.size:
            raise LatentmedError(f"{where}: all {n} voxels are NaN or infinite; the file holds no image.")
        fill = float(np.min(data[~bad]))
    else:
        fill = float(nan_to)
    data[bad] = fill
    return n


@dataclass
class Volume:
    """One 3D volume (or a single 2D slice): a loader for its array and affine (RAS, mm) and a name used in ids.

    ``nan_to``: what NaN/inf voxels become (``None``: an error naming the file; a number; ``"min"``).
    """

    path: Path
    name: str
    kind: str  # "nifti" | "dicom"
    files: tuple[Path, ...] = ()
    nan_to: float | str | None = None
    replaced: int = 0  # NaN/inf voxels replaced by the last load

    def header(self) -> tuple[tuple[int, ...], np.ndarray]:
        """``(shape, affine)``; NIfTI without reading voxel data, a DICOM series is read in full.

        The shape has 3 entries (a 2D image gets a trailing 1); a colour DICOM has a 4th (channels).
        """
        if self.kind == "nifti":
            with reading(self.path, "NIfTI header"):
                img = open_nifti(self.path)
                return nifti_shape(img, self.path), nifti_affine(img)
        data, affine = self.load()
        return data.shape, affine

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(data float32 [X, Y, Z(, C)], affine 4x4)``; DICOM data are in HU (rescale applied).

        A DICOM without patient geometry has affine ``None``: its frames are stacked in file order.
        """
        if self.kind == "nifti":
            with reading(self.path, "NIfTI data"):
                img = open_nifti(self.path)
                shape = nifti_shape(img, self.path)
                data = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape)
                affine = nifti_affine(img)
        else:
            data, affine = load_dicom_series(self.files)
        with reading(self.path, "image data"):
            self.replaced = replace_nonfinite(data, self.nan_to, self.path)
        return data, affine

    @classmethod
    def nifti(cls, path: Path, name: str | None = None, nan_to=None) -> "Volume":
        """A NIfTI file as a volume named ``name`` (default: the file name without suffix)."""
        return cls(path=Path(path), name=name or file_stem(Path(path).name), kind="nifti", nan_to=nan_to)


def dicom_volumes(files: Sequence[Path], skip_bad: bool = False, report: Callable[[str], None] | None = None,
                  nan_to=None, allow_gaps: bool = False) -> list[Volume]:
    """DICOM files grouped into volumes (:func:`latentmed.data.dicom.group_dicom_series`)."""
    return [Volume(path=s.path, name=s.name, kind="dicom", files=s.files, nan_to=nan_to)
            for s in group_dicom_series(files, skip_bad=skip_bad, report=report, allow_gaps=allow_gaps)]


__all__ = ["Volume", "dicom_volumes", "parse_nan_to", "replace_nonfinite"]
