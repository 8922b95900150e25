"""DICOM files grouped into series (pydicom): headers, slice order, pixel data in HU, the RAS affine.

:func:`group_dicom_series` groups files into :class:`DicomSeries` (one volume each);
:func:`load_dicom_series` stacks a series into ``[slice, row, col(, channel)]`` with its affine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from latentmed.data.formats import file_stem
from latentmed.data.notices import BAD_HINT, notify, one_line, reading
from latentmed.errors import LatentmedError

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
        """The header of ``path``, its pixel data checked complete (not decoded): a truncated image is an error."""
        with reading(path, "DICOM header"):
            ds = _dcmread(path)
            rows, cols = _number(ds, "Rows", None, path), _number(ds, "Columns", None, path)
            sop = _sop_class(ds)
            if rows is None or cols is None:
                if "Image Storage" in sop or str(ds.get("Modality", "") or "") in IMAGE_MODALITIES:
                    raise LatentmedError(f"{path}: damaged DICOM file: a {sop or ds.get('Modality')} file without "
                                         f"Rows/Columns (truncated?); {BAD_HINT}.")
                if not sop and not ds.get("Modality", ""):
                    raise LatentmedError(f"{path}: damaged DICOM file (no image size, no SOP class); {BAD_HINT}.")
                raise NoImageError(f"{path}: DICOM file without an image ({sop or ds.get('Modality')}); "
                                   "expected an image such as CT, MR or X-ray.")
            samples = int(_number(ds, "SamplesPerPixel", 1, path))
            frames = int(_number(ds, "NumberOfFrames", 1, path) or 1)
            _check_pixel_data(ds, path)
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


IMAGE_MODALITIES = {"CT", "MR", "CR", "DX", "DR", "MG", "US", "PT", "NM", "XA", "RF", "OT", "SC", "IO", "PX", "OP"}


def _sop_class(ds) -> str:
    """The SOP class name (``"CT Image Storage"``, ``"RT Structure Set Storage"``, ``"Media Storage Directory
    Storage"`` for a DICOMDIR), or ``""`` when the file names none."""
    uid = ds.get("SOPClassUID", "") or getattr(ds.get("file_meta", None), "MediaStorageSOPClassUID", "") or ""
    return str(getattr(uid, "name", uid)) if uid else ""


def _check_pixel_data(ds, path: Path) -> None:
    """Refuse pixel data that cannot be whole: absent, shorter than Rows x Columns x frames needs
    (uncompressed), or broken fragments (compressed). Checked without decoding."""
    _check_size_claim(ds, path)
    data = ds.get("PixelData", None)
    if data is None:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            return
        raise LatentmedError(f"{path}: DICOM image without pixel data (a truncated file?); {BAD_HINT}.")
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None and getattr(ts, "is_encapsulated", False):
        from pydicom.encaps import parse_fragments

        try:
            n, _ = parse_fragments(data)
        except Exception as exc:
            raise LatentmedError(f"{path}: damaged compressed pixel data ({type(exc).__name__}: {one_line(exc, 120)}); "
                                 f"{BAD_HINT}.") from exc
        if n < 1:
            raise LatentmedError(f"{path}: compressed pixel data without fragments (a truncated file?); {BAD_HINT}.")
        return
    try:
        from pydicom.pixels.utils import get_expected_length  # pydicom >= 3
    except ImportError:  # pragma: no cover - pydicom 2.4
        from pydicom.pixel_data_handlers.util import get_expected_length
    try:
        need = int(get_expected_length(ds, "bytes"))
    except Exception:  # fields it needs are missing or odd: decoding will say what is wrong
        return
    if len(data) < need:
        raise LatentmedError(f"{path}: pixel data hold {len(data)} bytes where Rows x Columns x frames need {need} "
                             f"(a truncated file); {BAD_HINT}.")


@dataclass
class DicomSeries:
    """One volume's DICOM files, sorted along the slice normal; ``path`` names it (the file, or their folder)."""

    path: Path
    name: str
    files: tuple[Path, ...]


def _dcmread(path: Path, stop_before_pixels: bool = False):
    import pydicom

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels)
    except Exception as exc:
        raise LatentmedError(f"{path}: cannot read DICOM file ({type(exc).__name__}: {one_line(exc, 200)}); "
                             f"{BAD_HINT}.") from exc


def group_dicom_series(files: Sequence[Path], skip_bad: bool = False,
                       report: Callable[[str], None] | None = None, allow_gaps: bool = False) -> list[DicomSeries]:
    """Group DICOM files into volumes, slices sorted along the normal.

    A volume is one ``SeriesInstanceUID`` with one orientation and one image size; a series whose
    files differ in those is split (and the split announced), a multi-frame file is a volume of its
    own. Unreadable files, truncated images included (checked before grouping), are an error, or
    with ``skip_bad`` skipped and announced; files without an image (DICOMDIR, RTSTRUCT, by their
    SOP class) are left out and announced. A missing slice position (a step over 1.5 times the
    median spacing) is an error naming the neighbours unless ``allow_gaps`` (then announced).
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
        notify(report, f"skipped {len(bad)} unreadable DICOM file(s): "
               + "; ".join(one_line(str(e).replace(f"; {BAD_HINT}.", ""), 160) for e in bad[:3])
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
        items = _sort_slices(items, report, allow_gaps)
        paths = tuple(h.path for h in items)
        if len(paths) == 1:
            name = file_stem(paths[0].name)
        else:
            name = paths[0].parent.name or "dicom"
            if len(groups) > 1:
                name += f"_{_short(key[0])}" + (f"_{items[0].shape[0]}x{items[0].shape[1]}"
                                                 if per_series[key[0]] > 1 else "")
        volumes.append(DicomSeries(path=paths[0] if len(paths) == 1 else paths[0].parent, name=name, files=paths))
    return _unique_names(sorted(volumes, key=lambda v: v.name))


def _short(uid: str) -> str:
    return uid.replace("/", "_")[-8:] or "series"


def _unique_names(volumes: list[DicomSeries]) -> list[DicomSeries]:
    seen: dict[str, int] = {}
    for v in volumes:
        if v.name in seen:
            seen[v.name] += 1
            v.name = f"{v.name}_{seen[v.name]}"
        else:
            seen[v.name] = 1
    return volumes


def _sort_slices(items: list[DicomHeader], report, allow_gaps: bool = False) -> list[DicomHeader]:
    """Sort slices along the normal (position), else by InstanceNumber; refuse repeated positions and gaps."""
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
        typical = float(np.median(steps)) if len(steps) else 0.0
        if len(steps) > 1 and steps.max() > 1.5 * typical and not allow_gaps:
            i = int(np.argmax(steps))
            raise LatentmedError(f"DICOM series in {where}: a gap of {steps[i]:.3g} mm between {keyed[i][1].path.name} "
                                 f"and {keyed[i + 1][1].path.name} where slices lie {typical:.3g} mm apart (a missing "
                                 "file?); add the missing slice, or pass allow_gaps=True (CLI: --allow-gaps) to read "
                                 "the series with the gap.")
        if len(steps) > 1 and steps.max() > 1.5 * steps.min():
            notify(report, f"DICOM series in {where}: uneven slice spacing ({steps.min():.3g} to {steps.max():.3g} mm"
                           + ("; gaps allowed" if allow_gaps else "") + "); read as is.")
        return [h for _, h in keyed]
    return sorted(items, key=lambda h: (h.instance, h.path.name))


def load_dicom_series(files: Sequence[Path]) -> tuple[np.ndarray, np.ndarray | None]:
    """Stack slices into ``[slice, row, col(, channel)]`` (HU for grayscale) with an RAS affine."""
    planes, datasets = [], []
    for f in files:
        with reading(f, "DICOM file"):
            ds = _dcmread(f)
            samples = _check_size_claim(ds, f)
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


def _check_size_claim(ds, f: Path) -> int:
    """Samples per pixel, after refusing a header whose image size fields are text or claim a huge image."""
    samples = int(_number(ds, "SamplesPerPixel", 1, f))
    sizes = {k: _number(ds, k, None, f, binary=True) for k in PIXEL_FIELDS}  # before the decoder trips
    n_pixels = float(sizes["Rows"] or 0) * float(sizes["Columns"] or 0) * float(sizes["NumberOfFrames"] or 1)
    if n_pixels * samples > MAX_PIXELS:
        raise LatentmedError(f"{f}: the header claims {sizes['Rows']:g} x {sizes['Columns']:g} pixels x "
                             f"{sizes['NumberOfFrames'] or 1:g} frame(s), more than {MAX_PIXELS:.0e} values "
                             f"(a corrupted header?); {BAD_HINT}.")
    return samples


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


__all__ = ["DicomHeader", "DicomSeries", "NoImageError", "group_dicom_series", "load_dicom_series"]
