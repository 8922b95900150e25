"""3D volumes (NIfTI via nibabel, DICOM series via pydicom) cut into 2D slices.

A slice is taken along ``axis``: an array axis (0, 1, 2; no reorientation) or an anatomical
name, for which the volume is first reoriented so that the slice shows the usual view:
``"sagittal"`` (cranial up, anterior left), ``"coronal"`` and ``"axial"`` (patient's right on
the left, anterior up). Slices are either every index along the axis, the given indices, or
the slice through each centroid (e.g. VerSe vertebra centroids), optionally cropped around it.
CT intensities are windowed (``window=(centre, width)`` in HU, or a preset name).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from latentmed.errors import LatentmedError

#: CT windows (centre, width) in Hounsfield units (Radiopaedia's usual values).
WINDOWS = {"bone": (400.0, 1800.0), "soft_tissue": (40.0, 400.0), "lung": (-600.0, 1500.0),
           "brain": (40.0, 80.0), "spine": (300.0, 1500.0)}
#: Display orientation (axis codes) per anatomical view; the slice axis comes first.
VIEWS = {"sagittal": ("R", "I", "P"), "coronal": ("A", "I", "L"), "axial": ("S", "P", "L")}
#: VerSe vertebra label numbers -> names (1-7 cervical, 8-19 thoracic, 20-25 lumbar, 28 T13).
VERSE_LABELS = {**{i: f"C{i}" for i in range(1, 8)}, **{i + 7: f"T{i}" for i in range(1, 13)},
                **{i + 19: f"L{i}" for i in range(1, 7)}, 26: "S1", 28: "T13"}
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def is_dicom(path: Path) -> bool:
    """``.dcm`` suffix, or the ``DICM`` magic at byte 128."""
    if path.suffix.lower() == ".dcm":
        return True
    if path.suffix:
        return False
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def volume_stem(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES + (".dcm",):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def resolve_window(window) -> tuple[float, float] | None:
    """``None``, a preset name from :data:`WINDOWS`, or ``(centre, width)`` -> ``(low, high)`` in HU."""
    if window is None:
        return None
    if isinstance(window, str):
        key = window.strip().lower().replace("-", "_")
        if key in WINDOWS:
            c, w = WINDOWS[key]
        else:
            parts = key.split(",")
            try:
                c, w = (float(p) for p in parts)
            except ValueError:
                raise LatentmedError(f"window {window!r}: expected a preset ({', '.join(WINDOWS)}) or "
                                     "'centre,width' in HU, e.g. '400,1800'.") from None
    else:
        try:
            c, w = (float(v) for v in window)
        except (TypeError, ValueError):
            raise LatentmedError(f"window must be (centre, width) in HU or a preset name; got {window!r}.") from None
    if w <= 0:
        raise LatentmedError(f"window width must be positive; got {w}.")
    return c - w / 2, c + w / 2


@dataclass
class Volume:
    """One 3D volume: a loader for its array and affine (RAS, mm) and a name used in ids."""

    path: Path
    name: str
    kind: str  # "nifti" | "dicom"
    files: tuple[Path, ...] = ()

    def header(self) -> tuple[tuple[int, ...], np.ndarray]:
        """``(shape, affine)``; NIfTI without reading voxel data, a DICOM series is read in full."""
        if self.kind == "nifti":
            img = _nib_load(self.path)
            return tuple(int(s) for s in img.shape[:3]), np.asarray(img.affine, dtype=float)
        data, affine = _load_dicom_series(self.files)
        return data.shape, affine

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(data float32 [X, Y, Z], affine 4x4)``; DICOM data are in HU (rescale applied)."""
        if self.kind == "nifti":
            img = _nib_load(self.path)
            if len(img.shape) > 3 and int(np.prod(img.shape[3:])) != 1:
                raise LatentmedError(f"{self.path}: a {len(img.shape)}D NIfTI with shape {img.shape}; expected a "
                                     "3D volume (split the 4D series first).")
            try:
                data = np.asarray(img.get_fdata(dtype=np.float32)).reshape(img.shape[:3])
            except Exception as exc:  # nibabel raises many types on truncated data
                raise LatentmedError(f"{self.path}: cannot read NIfTI data ({exc}).") from exc
            return data, np.asarray(img.affine, dtype=float)
        return _load_dicom_series(self.files)


def _nib_load(path: Path):
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as exc:
        raise LatentmedError(f"{path}: cannot read NIfTI file ({exc}).") from exc


def _dcmread(path: Path, stop_before_pixels: bool = False):
    import pydicom

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels)
    except Exception as exc:
        raise LatentmedError(f"{path}: cannot read DICOM file ({exc}).") from exc


def group_dicom_series(files: Sequence[Path]) -> list[Volume]:
    """Group DICOM files by ``SeriesInstanceUID`` into volumes, slices sorted along the normal."""
    groups: dict[str, list[tuple[float, Path]]] = {}
    for f in files:
        ds = _dcmread(f, stop_before_pixels=True)
        uid = str(getattr(ds, "SeriesInstanceUID", "") or f.parent)
        pos = getattr(ds, "ImagePositionPatient", None)
        ori = getattr(ds, "ImageOrientationPatient", None)
        if pos is not None and ori is not None:
            normal = np.cross(np.asarray(ori[:3], float), np.asarray(ori[3:], float))
            key = float(np.dot(normal, np.asarray(pos, float)))
        else:
            key = float(getattr(ds, "InstanceNumber", 0) or 0)
        groups.setdefault(uid, []).append((key, f))
    volumes = []
    for uid, items in groups.items():
        items.sort(key=lambda kv: kv[0])
        paths = tuple(p for _, p in items)
        parent = paths[0].parent.name or "dicom"
        name = parent if len(groups) == 1 else f"{parent}_{uid[-8:]}"
        volumes.append(Volume(path=paths[0].parent, name=name, kind="dicom", files=paths))
    return sorted(volumes, key=lambda v: v.name)


def _load_dicom_series(files: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Stack slices into ``[slice, row, col]`` (HU) with an RAS affine from the DICOM geometry."""
    planes, datasets = [], []
    for f in files:
        ds = _dcmread(f)
        try:
            arr = ds.pixel_array.astype(np.float32)
        except Exception as exc:
            raise LatentmedError(f"{f}: cannot decode DICOM pixel data ({exc}).") from exc
        arr = arr * float(getattr(ds, "RescaleSlope", 1) or 1) + float(getattr(ds, "RescaleIntercept", 0) or 0)
        if arr.ndim == 3 and len(files) == 1:  # multi-frame file
            planes.extend(list(arr))
        else:
            planes.append(arr)
        datasets.append(ds)
    shapes = {p.shape for p in planes}
    if len(shapes) != 1:
        raise LatentmedError(f"DICOM series in {files[0].parent} has slices of different sizes {sorted(shapes)}.")
    data = np.stack(planes, axis=0)
    first = datasets[0]
    affine = np.eye(4)
    ori = getattr(first, "ImageOrientationPatient", None)
    pos = getattr(first, "ImagePositionPatient", None)
    spacing = [float(s) for s in getattr(first, "PixelSpacing", [1.0, 1.0])]
    if ori is not None and pos is not None:
        row_cos, col_cos = np.asarray(ori[:3], float), np.asarray(ori[3:], float)
        if len(datasets) > 1 and getattr(datasets[-1], "ImagePositionPatient", None) is not None:
            step = (np.asarray(datasets[-1].ImagePositionPatient, float) - np.asarray(pos, float)) / (len(datasets) - 1)
        else:
            step = np.cross(row_cos, col_cos) * float(getattr(first, "SliceThickness", 1.0) or 1.0)
        lps = np.column_stack([step, col_cos * spacing[0], row_cos * spacing[1], np.asarray(pos, float)])
        affine[:3, :] = lps
        affine[:2, :] *= -1  # DICOM patient space is LPS; NIfTI/nibabel use RAS
    return data, affine


def load_centroids(source) -> list[tuple[str, np.ndarray]]:
    """Centroids as ``[(name, voxel xyz)]`` from a VerSe-style JSON, a dict or a list of triples.

    VerSe JSON: ``[{"direction": ["P", "I", "R"]}, {"label": 20, "X": .., "Y": .., "Z": ..}, ...]``;
    coordinates are voxel indices in the orientation given by ``direction`` (reoriented to the
    volume's own voxel axes by :func:`centroids_to_voxels`; a flipped axis maps c -> n - 1 - c,
    where VerSe's ``reorient_centroids_to`` uses n - c). Labels become names (20 -> ``L1``).
    Returned direction (or ``None``) is stored on the first entry's name as ``("__direction__", codes)``.
    """
    direction = None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise LatentmedError(f"centroids file {path} not found (expected a VerSe-style JSON).")
        try:
            source = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise LatentmedError(f"{path}: not valid JSON ({exc}).") from exc
    items: list[tuple[str, np.ndarray]] = []
    if isinstance(source, dict):
        for name, xyz in source.items():
            items.append((str(name), np.asarray(xyz, float)))
    elif isinstance(source, (list, tuple)):
        for i, entry in enumerate(source):
            if isinstance(entry, dict) and "direction" in entry:
                direction = tuple(str(c).upper() for c in entry["direction"])
            elif isinstance(entry, dict):
                try:
                    xyz = np.asarray([entry["X"], entry["Y"], entry["Z"]], float)
                except KeyError:
                    raise LatentmedError(f"centroid entry {entry!r} lacks X/Y/Z keys.") from None
                if not np.all(np.isfinite(xyz)):
                    continue
                label = entry.get("label", i)
                items.append((VERSE_LABELS.get(int(label), str(label)) if str(label).isdigit() else str(label), xyz))
            else:
                items.append((str(i), np.asarray(entry, float)))
    else:
        raise LatentmedError(f"centroids: expected a JSON path, a dict or a list; got {type(source).__name__}.")
    for name, xyz in items:
        if xyz.shape != (3,):
            raise LatentmedError(f"centroid {name!r} has {xyz.size} coordinates; expected 3 (voxel x, y, z).")
    if not items:
        raise LatentmedError("centroids: no centroid with finite X/Y/Z coordinates found.")
    return [("__direction__", direction)] + items if direction else items  # type: ignore[list-item]


def centroids_to_voxels(centroids, affine: np.ndarray, shape: Sequence[int]) -> list[tuple[str, np.ndarray]]:
    """Reorient centroids given in a ``direction`` (axis codes) to the volume's voxel axes."""
    import nibabel.orientations as nio

    items = list(centroids)
    if not items or items[0][0] != "__direction__":
        return items
    direction, items = items[0][1], items[1:]
    trans = nio.ornt_transform(nio.axcodes2ornt(direction), nio.io_orientation(affine)).astype(int)
    out = []
    for name, xyz in items:
        new = np.empty(3)
        for src_axis, (dst_axis, flip) in enumerate(trans):
            new[dst_axis] = xyz[src_axis] if flip == 1 else (shape[dst_axis] - 1) - xyz[src_axis]
        out.append((name, new))
    return out


def _view_transform(affine: np.ndarray, axis):
    """``("view", ornt transform)`` for an anatomical view name, ``("axis", int)`` for an array axis."""
    import nibabel.orientations as nio

    if isinstance(axis, str):
        key = axis.strip().lower()
        if key.isdigit():
            return _view_transform(affine, int(key))
        if key not in VIEWS:
            raise LatentmedError(f"axis {axis!r}: expected 0, 1, 2 or one of {', '.join(VIEWS)}.")
        return "view", nio.ornt_transform(nio.io_orientation(affine), nio.axcodes2ornt(VIEWS[key])).astype(int)
    if not isinstance(axis, (int, np.integer)) or not 0 <= int(axis) <= 2:
        raise LatentmedError(f"axis {axis!r}: expected 0, 1, 2 or one of {', '.join(VIEWS)}.")
    return "axis", int(axis)


def slicing_plan(shape: Sequence[int], affine: np.ndarray, axis):
    """``(oriented shape, point_map)`` where ``point_map(voxel xyz) -> (slice k, row, col)``."""
    kind, t = _view_transform(affine, axis)
    shape = tuple(int(s) for s in shape[:3])
    if kind == "axis":
        order = [t] + [a for a in range(3) if a != t]
        return tuple(shape[a] for a in order), (lambda xyz: np.asarray(xyz, float)[order])
    new_shape = [0, 0, 0]
    for src_axis, (dst_axis, _) in enumerate(t):
        new_shape[dst_axis] = shape[src_axis]

    def point_map(xyz):
        new = np.empty(3)
        for src_axis, (dst_axis, flip) in enumerate(t):
            new[dst_axis] = xyz[src_axis] if flip == 1 else (shape[src_axis] - 1) - xyz[src_axis]
        return new

    return tuple(new_shape), point_map


def orient_for_slicing(data: np.ndarray, affine: np.ndarray, axis) -> np.ndarray:
    """The volume with the slice axis first, reoriented to the view's display orientation for named axes."""
    import nibabel.orientations as nio

    kind, t = _view_transform(affine, axis)
    if kind == "axis":
        return np.moveaxis(data, t, 0)
    return np.ascontiguousarray(nio.apply_orientation(data, t))
