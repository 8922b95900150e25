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
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

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
BAD_HINT = "remove or fix the file, or pass skip_bad=True (CLI: --skip-bad) to skip unreadable files"


class DataNotice(UserWarning):
    """Something the readers changed or skipped (resize, channel conversion, skipped file): said once."""


def notify(report: Callable[[str], None] | None, message: str) -> None:
    """Tell the user ``message``: through ``report`` (e.g. the CLI's console) or as a :class:`DataNotice` warning."""
    if report is not None:
        report(message)
    else:
        warnings.warn(message, DataNotice, stacklevel=3)


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


def one_line(text, limit: int = 300) -> str:
    """``text`` (or an exception's message) on one line, at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@contextmanager
def reading(where, what: str):
    """Turn any exception raised while reading ``where`` into a one-line :class:`LatentmedError` naming it."""
    try:
        yield
    except LatentmedError as exc:  # ours already name the file; make sure they stay on one line
        if "\n" in str(exc):
            raise LatentmedError(one_line(exc)) from exc
        raise
    except MemoryError as exc:
        raise LatentmedError(f"{where}: cannot read {what}: not enough memory (a corrupted header may claim a "
                             "huge image); check the file.") from exc
    except Exception as exc:  # nibabel/pydicom/numpy raise many types on damaged files
        raise LatentmedError(f"{where}: cannot read {what} ({type(exc).__name__}: {one_line(exc, 200)}); "
                             f"{BAD_HINT}.") from exc


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


def _number(ds, keyword: str, default, where, count: int = 1, binary: bool = False):
    """A numeric DICOM field as float (or a tuple of ``count`` floats), checked finite; ``default`` if absent.

    ``binary``: the field is stored as a binary integer (VR US/UL/IS), so text there means a damaged header.
    """
    try:
        raw = ds.get(keyword, None)
    except Exception as exc:
        raise LatentmedError(f"{where}: DICOM field {keyword} is unreadable ({type(exc).__name__}: "
                             f"{one_line(exc, 120)}); fix or remove the file.") from exc
    if binary and isinstance(raw, (str, bytes)) and raw.strip():
        raise LatentmedError(f"{where}: DICOM field {keyword} holds text {one_line(repr(raw), 60)} where an integer "
                             "is stored (damaged header); fix or remove the file.")
    seq = raw if hasattr(raw, "__len__") and not isinstance(raw, (str, bytes)) else [raw]
    if raw is None or (isinstance(raw, (str, bytes)) and not raw.strip()) or len(seq) == 0:
        return default
    try:
        values = [float(v) for v in seq]
    except (TypeError, ValueError, OverflowError):
        values = []
    if len(values) != count or not all(np.isfinite(values)):
        raise LatentmedError(f"{where}: DICOM field {keyword} = {one_line(repr(raw), 80)} is not "
                             f"{'a number' if count == 1 else f'{count} numbers'}; fix or remove the file.")
    return values[0] if count == 1 else tuple(values)


class NoImageError(LatentmedError):
    """A readable DICOM file that holds no image (DICOMDIR, RT structure set, structured report, ...)."""


@dataclass
class DicomHeader:
    """What grouping a DICOM file into a volume needs (read without pixel data)."""

    path: Path
    series: str
    shape: tuple[int, int, int]  # rows, columns, samples per pixel
    frames: int
    orientation: tuple[float, ...] | None
    position: tuple[float, float, float] | None
    instance: float

    @classmethod
    def read(cls, path: Path) -> "DicomHeader":
        with reading(path, "DICOM header"):
            ds = _dcmread(path, stop_before_pixels=True)
            rows, cols = _number(ds, "Rows", None, path), _number(ds, "Columns", None, path)
            if rows is None or cols is None:
                kind = str(ds.get("Modality", "") or ds.get("SOPClassUID", "") or "")
                if not kind and not str(getattr(ds.get("file_meta", None), "MediaStorageSOPClassUID", "") or ""):
                    raise LatentmedError(f"{path}: damaged DICOM file (no image size, no SOP class); {BAD_HINT}.")
                raise NoImageError(f"{path}: DICOM file without an image (no Rows/Columns; modality {kind}); "
                                   "expected an image such as CT, MR or X-ray.")
            samples = int(_number(ds, "SamplesPerPixel", 1, path))
            frames = int(_number(ds, "NumberOfFrames", 1, path) or 1)
            ori = _number(ds, "ImageOrientationPatient", None, path, 6)
            pos = _number(ds, "ImagePositionPatient", None, path, 3)
            if ori is not None:
                r, c = np.asarray(ori[:3]), np.asarray(ori[3:])
                if not (abs(np.linalg.norm(r) - 1) < 0.05 and abs(np.linalg.norm(c) - 1) < 0.05 and abs(r @ c) < 0.05):
                    raise LatentmedError(f"{path}: ImageOrientationPatient {list(ori)} are not two orthogonal unit "
                                         "vectors; fix or remove the file.")
            return cls(path=path, series=str(ds.get("SeriesInstanceUID", "") or ""),
                       shape=(int(rows), int(cols), samples), frames=frames,
                       orientation=tuple(round(v, 3) for v in ori) if ori is not None else None,
                       position=pos, instance=float(_number(ds, "InstanceNumber", 0, path) or 0))


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
                img = _nib_load(self.path)
                return _nifti_shape(img, self.path), _nifti_affine(img)
        data, affine = self.load()
        return data.shape, affine

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(data float32 [X, Y, Z(, C)], affine 4x4)``; DICOM data are in HU (rescale applied).

        A DICOM without patient geometry has affine ``None``: its frames are stacked in file order.
        """
        if self.kind == "nifti":
            with reading(self.path, "NIfTI data"):
                img = _nib_load(self.path)
                shape = _nifti_shape(img, self.path)
                data = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape)
                affine = _nifti_affine(img)
        else:
            data, affine = _load_dicom_series(self.files)
        with reading(self.path, "image data"):
            self.replaced = replace_nonfinite(data, self.nan_to, self.path)
        return data, affine


def _nib_load(path: Path):
    import nibabel as nib
    from nibabel.spatialimages import SpatialImage

    try:
        img = nib.load(str(path))
    except Exception as exc:
        raise LatentmedError(f"{path}: cannot read NIfTI file ({type(exc).__name__}: {one_line(exc, 200)}); "
                             f"{BAD_HINT}.") from exc
    if not isinstance(img, SpatialImage):
        raise LatentmedError(f"{path}: a {type(img).__name__} is not a spatial image (e.g. CIFTI-2 holds "
                             "surface/grayordinate data); expected a 2D or 3D NIfTI volume.")
    return img


def _nifti_shape(img, path: Path) -> tuple[int, int, int]:
    """The 3D shape of a NIfTI image (2D gets a trailing 1); checks dimensions and that the file can hold it."""
    shape = tuple(int(s) for s in img.shape)
    if len(shape) > 3 and int(np.prod(shape[3:])) != 1:
        raise LatentmedError(f"{path}: a {len(shape)}D NIfTI with shape {shape}; expected a 3D volume "
                             "(split the 4D series first).")
    shape = (shape + (1, 1, 1))[:3]
    if sum(s > 1 for s in shape) < 2 or min(shape) < 1:
        raise LatentmedError(f"{path}: NIfTI shape {tuple(int(s) for s in img.shape)} is not an image; expected a "
                             "2D image or a 3D volume.")
    nbytes = int(np.prod(shape, dtype=np.float64)) * np.dtype(img.get_data_dtype()).itemsize
    size = path.stat().st_size
    try:
        offset = int(getattr(img.dataobj, "offset", 0) or 0)
    except (TypeError, ValueError, OverflowError):
        offset = 0
    # deflate compresses at most ~1032:1, so a .nii.gz cannot hold more than that
    if nbytes > (size * 1032 + 65536 if path.name.lower().endswith(".gz") else size - offset):
        raise LatentmedError(f"{path}: the header declares shape {shape} ({nbytes} bytes of voxels) but the file "
                             f"has {size} bytes (truncated or corrupt); {BAD_HINT}.")
    return shape  # type: ignore[return-value]


def _nifti_affine(img) -> np.ndarray:
    affine = img.affine
    return np.eye(4) if affine is None else np.asarray(affine, dtype=float)


def _dcmread(path: Path, stop_before_pixels: bool = False):
    import pydicom

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels)
    except Exception as exc:
        raise LatentmedError(f"{path}: cannot read DICOM file ({type(exc).__name__}: {one_line(exc, 200)}); "
                             f"{BAD_HINT}.") from exc


def group_dicom_series(files: Sequence[Path], skip_bad: bool = False,
                       report: Callable[[str], None] | None = None) -> list[Volume]:
    """Group DICOM files into volumes, slices sorted along the normal.

    A volume is one ``SeriesInstanceUID`` with one orientation and one image size; a series whose
    files differ in those is split (and the split announced), a multi-frame file is a volume of its
    own. Unreadable files are an error, or with ``skip_bad`` skipped and announced; files without
    an image (DICOMDIR, RTSTRUCT) are left out and announced; uneven slice spacing (a missing
    slice?) is announced.
    """
    headers, bad, no_image = [], [], []
    for f in files:
        try:
            headers.append(DicomHeader.read(Path(f)))
        except NoImageError:
            if len(files) == 1:
                raise
            no_image.append(Path(f).name)
        except LatentmedError as exc:
            if not skip_bad:
                raise
            bad.append(exc)
    if no_image:
        notify(report, f"ignored {len(no_image)} DICOM file(s) without an image (DICOMDIR, RT structure set, "
                       f"report, ...): {', '.join(no_image[:3])}" + (" ..." if len(no_image) > 3 else ""))
    if bad:
        notify(report, f"skipped {len(bad)} unreadable DICOM file(s): " + "; ".join(one_line(e, 160) for e in bad[:3])
               + (" ..." if len(bad) > 3 else ""))
    groups: dict[tuple, list[DicomHeader]] = {}
    for h in headers:
        key = (h.series or str(h.path.parent), h.orientation, h.shape, h.path if h.frames > 1 else None)
        groups.setdefault(key, []).append(h)
    per_series: dict[str, int] = {}
    for key in groups:
        per_series[key[0]] = per_series.get(key[0], 0) + 1
    for series, n in per_series.items():
        if n > 1:
            notify(report, f"DICOM series {_short(series)} holds files of {n} different orientations / image sizes / "
                           f"multi-frame files; read as {n} separate volumes.")
    volumes = []
    for key, items in groups.items():
        items = _sort_slices(items, report)
        paths = tuple(h.path for h in items)
        if len(paths) == 1:
            name = volume_stem(paths[0])
        else:
            name = paths[0].parent.name or "dicom"
            if len(groups) > 1:
                name += f"_{_short(key[0])}" + (f"_{items[0].shape[0]}x{items[0].shape[1]}"
                                                 if per_series[key[0]] > 1 else "")
        volumes.append(Volume(path=paths[0] if len(paths) == 1 else paths[0].parent, name=name, kind="dicom",
                              files=paths))
    return _unique_names(sorted(volumes, key=lambda v: v.name))


def _short(uid: str) -> str:
    return uid.replace("/", "_")[-8:] or "series"


def _unique_names(volumes: list[Volume]) -> list[Volume]:
    seen: dict[str, int] = {}
    for v in volumes:
        if v.name in seen:
            seen[v.name] += 1
            v.name = f"{v.name}_{seen[v.name]}"
        else:
            seen[v.name] = 1
    return volumes


def _sort_slices(items: list[DicomHeader], report) -> list[DicomHeader]:
    """Sort slices along the normal (position), else by InstanceNumber; refuse repeated positions."""
    if len(items) == 1:
        return items
    if all(h.position is not None and h.orientation is not None for h in items):
        ori = np.asarray(items[0].orientation, float)
        normal = np.cross(ori[:3], ori[3:])
        keyed = sorted(((float(normal @ np.asarray(h.position)), h) for h in items), key=lambda kv: kv[0])
        where = items[0].path.parent
        steps = np.diff([k for k, _ in keyed])
        if np.any(np.abs(steps) < 1e-4):
            i = int(np.argmin(np.abs(steps)))
            raise LatentmedError(f"DICOM series in {where}: {keyed[i][1].path.name} and {keyed[i + 1][1].path.name} "
                                 "lie at the same slice position (two acquisitions in one series?); put them in "
                                 "separate folders.")
        if len(steps) > 1 and steps.max() > 1.5 * steps.min():
            notify(report, f"DICOM series in {where}: uneven slice spacing ({steps.min():.3g} to {steps.max():.3g} mm; "
                           "a slice missing?); read as is.")
        return [h for _, h in keyed]
    return sorted(items, key=lambda h: (h.instance, h.path.name))


def _load_dicom_series(files: Sequence[Path]) -> tuple[np.ndarray, np.ndarray | None]:
    """Stack slices into ``[slice, row, col(, channel)]`` (HU for grayscale) with an RAS affine."""
    planes, datasets = [], []
    for f in files:
        with reading(f, "DICOM file"):
            ds = _dcmread(f)
            samples = int(_number(ds, "SamplesPerPixel", 1, f))
            sizes = {k: _number(ds, k, None, f, binary=True) for k in PIXEL_FIELDS}  # before the decoder trips
            n_pixels = float(sizes["Rows"] or 0) * float(sizes["Columns"] or 0) * float(sizes["NumberOfFrames"] or 1)
            if n_pixels * samples > MAX_PIXELS:
                raise LatentmedError(f"{f}: the header claims {sizes['Rows']:g} x {sizes['Columns']:g} pixels x "
                                     f"{sizes['NumberOfFrames'] or 1:g} frame(s), more than {MAX_PIXELS:.0e} values "
                                     f"(a corrupted header?); {BAD_HINT}.")
            arr = _pixels(ds, f)
            if arr.ndim - (1 if samples > 1 else 0) == 2:  # one frame
                arr = arr[None]
            if arr.ndim != (4 if samples > 1 else 3) or min(arr.shape) < 1:
                raise LatentmedError(f"{f}: DICOM pixel data of shape {arr.shape} with {samples} sample(s) per "
                                     "pixel; expected rows x columns (x samples).")
            arr = arr.astype(np.float32)
            if samples == 1:
                slope, intercept = _number(ds, "RescaleSlope", 1.0, f), _number(ds, "RescaleIntercept", 0.0, f)
                arr = arr * float(slope or 1.0) + float(intercept)
            elif samples != 3:
                raise LatentmedError(f"{f}: {samples} samples per pixel; expected 1 (grayscale) or 3 (colour).")
        planes.extend(list(arr))
        datasets.append((f, ds))
    shapes = {p.shape for p in planes}
    if len(shapes) != 1:
        raise LatentmedError(f"DICOM series in {Path(files[0]).parent} has slices of different sizes {sorted(shapes)}.")
    data = np.stack(planes, axis=0)
    return data, _dicom_affine(datasets, len(planes))


MAX_PIXELS = 2.0 ** 31  # values in one DICOM file beyond which a header is taken to be corrupt
PIXEL_FIELDS = ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                "NumberOfFrames", "PlanarConfiguration")


def _pixels(ds, f: Path) -> np.ndarray:
    """``ds.pixel_array`` or a one-line error naming ``f`` (and the missing decoder, if that is why)."""
    try:
        return np.asarray(ds.pixel_array)
    except Exception as exc:
        msg = str(exc)
        if "missing dependencies" in msg or "no pixel data handlers" in msg.lower():
            ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            name = getattr(ts, "name", str(ts))
            raise LatentmedError(f"{f}: its pixel data are compressed as {name!r} and no installed decoder reads "
                                 "them; install one (pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg, "
                                 "or python-gdcm) or convert the file (e.g. gdcmconv --raw).") from exc
        if "no 'Pixel Data'" in msg:
            raise LatentmedError(f"{f}: DICOM file without pixel data (truncated, or not an image); "
                                 f"{BAD_HINT}.") from exc
        raise LatentmedError(f"{f}: cannot decode DICOM pixel data ({type(exc).__name__}: {one_line(exc, 200)}); "
                             f"{BAD_HINT}.") from exc


def _dicom_affine(datasets, n_planes: int) -> np.ndarray | None:
    """RAS affine of ``[slice, row, col]`` from ImageOrientation/Position, PixelSpacing and the slice step.

    ``None`` when the files carry no patient geometry (secondary capture, many multi-frame files).
    """
    f, first = datasets[0]
    affine = np.eye(4)
    ori = _number(first, "ImageOrientationPatient", None, f, 6)
    pos = _number(first, "ImagePositionPatient", None, f, 3)
    spacing = _number(first, "PixelSpacing", (1.0, 1.0), f, 2)
    if ori is None or pos is None:
        return None
    row_cos, col_cos = np.asarray(ori[:3]), np.asarray(ori[3:])
    thickness = _number(first, "SpacingBetweenSlices", None, f) or _number(first, "SliceThickness", None, f) or 1.0
    step = np.cross(row_cos, col_cos) * float(thickness)
    last_f, last = datasets[-1]
    if len(datasets) > 1:
        last_pos = _number(last, "ImagePositionPatient", None, last_f, 3)
        if last_pos is not None:
            step = (np.asarray(last_pos) - np.asarray(pos)) / (n_planes - 1)
    lps = np.column_stack([step, col_cos * spacing[0], row_cos * spacing[1], np.asarray(pos)])
    affine[:3, :] = lps
    affine[:2, :] *= -1  # DICOM patient space is LPS; NIfTI/nibabel use RAS
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise LatentmedError(f"{f}: DICOM geometry gives a degenerate affine (PixelSpacing {list(spacing)}, slice "
                             f"step {np.round(step, 3).tolist()}); fix the file or pass an array axis (0, 1, 2).")
    return affine


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
