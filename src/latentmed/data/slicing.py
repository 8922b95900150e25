"""Cutting 3D volumes into 2D slices: anatomical views, slice selection, CT windows, centroids.

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
from pathlib import Path
from typing import Sequence

import numpy as np

from latentmed.data.notices import one_line
from latentmed.errors import LatentmedError

#: CT windows (centre, width) in Hounsfield units (Radiopaedia's usual values).
WINDOWS = {"bone": (400.0, 1800.0), "soft_tissue": (40.0, 400.0), "lung": (-600.0, 1500.0),
           "brain": (40.0, 80.0), "spine": (300.0, 1500.0)}
#: Display orientation (axis codes) per anatomical view; the slice axis comes first.
VIEWS = {"sagittal": ("R", "I", "P"), "coronal": ("A", "I", "L"), "axial": ("S", "P", "L")}
#: VerSe vertebra label numbers -> names (1-7 cervical, 8-19 thoracic, 20-25 lumbar, 28 T13).
VERSE_LABELS = {**{i: f"C{i}" for i in range(1, 8)}, **{i + 7: f"T{i}" for i in range(1, 13)},
                **{i + 19: f"L{i}" for i in range(1, 7)}, 26: "S1", 28: "T13"}


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
    affine = np.eye(4) if affine is None else affine
    direction, items = items[0][1], items[1:]
    trans = nio.ornt_transform(nio.axcodes2ornt(direction), nio.io_orientation(affine)).astype(int)
    out = []
    for name, xyz in items:
        new = np.empty(3)
        for src_axis, (dst_axis, flip) in enumerate(trans):
            new[dst_axis] = xyz[src_axis] if flip == 1 else (shape[dst_axis] - 1) - xyz[src_axis]
        out.append((name, new))
    return out


def _view_transform(affine: np.ndarray, axis, where=""):
    """``("view", ornt transform)`` for an anatomical view name, ``("axis", int)`` for an array axis."""
    import nibabel.orientations as nio

    if isinstance(axis, str):
        key = axis.strip().lower()
        if key.lstrip("-").isdigit():
            return _view_transform(affine, int(key), where)
        if key not in VIEWS:
            raise LatentmedError(f"axis {axis!r}: expected 0, 1, 2 or one of {', '.join(VIEWS)}.")
        return "view", nio.ornt_transform(_orientation(affine, where, axis), nio.axcodes2ornt(VIEWS[key])).astype(int)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not 0 <= int(axis) <= 2:
        raise LatentmedError(f"axis {axis!r}: expected 0, 1, 2 or one of {', '.join(VIEWS)}.")
    return "axis", int(axis)


def _orientation(affine: np.ndarray, where, axis) -> np.ndarray:
    """nibabel's voxel-axis orientation of ``affine``, or a one-line error naming ``where``."""
    import nibabel.orientations as nio

    try:
        ornt = nio.io_orientation(affine)
        bad = not np.all(np.isfinite(ornt))
    except Exception as exc:
        bad, why = True, f" ({type(exc).__name__}: {one_line(exc, 120)})"
    else:
        why = ""
    if bad or not np.all(np.isfinite(affine)):
        raise LatentmedError(f"{where or 'volume'}: cannot tell the anatomical orientation from its affine"
                             f"{why or ' (degenerate axes)'}, needed for axis {axis!r}; pass an array axis "
                             "(axis=0/1/2, CLI: --axis 0) or fix the file's affine.")
    return ornt


def single_slice_axis(shape: Sequence[int]) -> int | None:
    """The array axis of length 1 when ``shape`` (3D) is one 2D image, else ``None``."""
    ones = [a for a in range(3) if int(shape[a]) == 1]
    return ones[0] if len(ones) == 1 else None


def plane_of_single_slice(affine: np.ndarray, axis_index: int) -> str | None:
    """The view (sagittal/coronal/axial) a single slice lies in, from its affine; ``None`` if unclear."""
    import nibabel.orientations as nio

    try:
        code = nio.aff2axcodes(affine)[axis_index]
    except Exception:
        return None
    return {"R": "sagittal", "L": "sagittal", "A": "coronal", "P": "coronal", "S": "axial", "I": "axial"}.get(code)


def slicing_how(shape: Sequence[int], affine: np.ndarray, axis, kind: str = "nifti", where=""):
    """How to cut a volume into 2D images: ``("axis", int)`` or ``("view", ornt transform)``.

    A single 2D image (one axis of length 1) is one image whatever ``axis``: a DICOM slice keeps
    its stored rows and columns (DICOM stores pixels in display order); a 2D NIfTI is shown in
    the view of the plane it lies in (its affine), or in array order when that is unclear.
    """
    single = single_slice_axis(shape)
    if affine is None:  # DICOM without geometry: frames in file order, rows and columns as stored
        kind_, t = _view_transform(np.eye(4), axis)
        return ("axis", single if single is not None else (t if kind_ == "axis" else 0))
    if single is None:
        return _view_transform(affine, axis, where)
    _view_transform(np.eye(4), axis)  # still validate the value
    if kind == "dicom":
        return "axis", single
    view = plane_of_single_slice(affine, single)
    if view is None:
        return "axis", single
    try:
        return _view_transform(affine, view, where)
    except LatentmedError:
        return "axis", single


def slicing_plan(shape: Sequence[int], affine: np.ndarray, axis, kind: str = "nifti", where=""):
    """``(oriented shape, point_map, how)`` where ``point_map(voxel xyz) -> (slice k, row, col)``."""
    how, t = slicing_how(shape, affine, axis, kind, where)
    shape = tuple(int(s) for s in shape[:3])
    if how == "axis":
        order = [t] + [a for a in range(3) if a != t]
        return tuple(shape[a] for a in order), (lambda xyz: np.asarray(xyz, float)[order]), (how, t)
    new_shape = [0, 0, 0]
    for src_axis, (dst_axis, _) in enumerate(t):
        new_shape[dst_axis] = shape[src_axis]

    def point_map(xyz):
        new = np.empty(3)
        for src_axis, (dst_axis, flip) in enumerate(t):
            new[dst_axis] = xyz[src_axis] if flip == 1 else (shape[src_axis] - 1) - xyz[src_axis]
        return new

    return tuple(new_shape), point_map, (how, t)


def orient_for_slicing(data: np.ndarray, how) -> np.ndarray:
    """The volume with the slice axis first (``how`` from :func:`slicing_how`), reoriented for views."""
    import nibabel.orientations as nio

    kind, t = how
    if kind == "axis":
        return np.moveaxis(data, t, 0)
    return np.ascontiguousarray(nio.apply_orientation(data, t))


def parse_slices(slices):
    """``None``/``"all"`` (every slice), an int, a sequence of ints, or text ``"10,20,30:40"`` (start:stop)."""
    if slices is None or (isinstance(slices, str) and slices.strip().lower() in ("", "all")):
        return None
    if isinstance(slices, (int, np.integer)) and not isinstance(slices, bool):
        return [int(slices)]
    if isinstance(slices, str):
        out: list[int] = []
        for part in slices.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                if ":" in part:
                    a, b = part.split(":", 1)
                    out.extend(range(int(a), int(b)))
                else:
                    out.append(int(part))
            except ValueError:
                raise LatentmedError(f"slices {slices!r}: cannot read {part!r}; expected indices and ranges such as "
                                     "'10,20,30:40' (30:40 = 30..39) or 'all'.") from None
        if not out:
            raise LatentmedError(f"slices {slices!r}: no slice selected; expected e.g. '64' or '30:40'.")
        return out
    try:
        return [int(k) for k in slices]
    except (TypeError, ValueError):
        raise LatentmedError(f"slices must be None, an int, a list of ints or text like '10,20,30:40'; "
                             f"got {slices!r}.") from None
