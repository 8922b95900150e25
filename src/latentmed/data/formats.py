"""File formats, each known once: suffixes, what kind a file is, ids from file names, and the readers and
writers of single files (2D images with PIL, NIfTI with nibabel; DICOM series: :mod:`latentmed.data.dicom`;
tar shards: :mod:`latentmed.data.shards`; PNG output: :func:`latentmed.io.write_image`).

The id rule: an item's id is its path relative to the opened folder without the suffix, ``/``-separated
(``sub/a`` for ``root/sub/a.png``); a manifest (``labels.csv`` with an ``image`` column) or a shard gives
its ids explicitly. :func:`file_stem` strips every suffix this module knows.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from latentmed.data.notices import BAD_HINT, one_line
from latentmed.errors import LatentmedError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
ARRAY_SUFFIXES = (".npy", ".npz")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm",)
#: Files a data folder may hold beside its images (labels, notes, settings): listed without a notice.
SIDE_SUFFIXES = (".csv", ".json", ".txt", ".md", ".yaml", ".yml", ".tsv")
#: PIL modes that hold 8 bits per channel.
EIGHT_BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr"}


def is_image_file(path: Path) -> bool:
    """A 2D image PIL reads (PNG, JPEG, TIFF, BMP), by suffix."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_nifti(path: Path) -> bool:
    """``.nii`` or ``.nii.gz`` (any case)."""
    return Path(path).name.lower().endswith(NIFTI_SUFFIXES)


def is_dicom(path: Path) -> bool:
    """``.dcm`` suffix, or no suffix and the ``DICM`` magic at byte 128."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    if path.suffix:
        return False
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def file_stem(name: str | os.PathLike) -> str:
    """``name`` without a known suffix (image, array, NIfTI, DICOM): ``a.nii.gz`` -> ``a``, ``sub/a.png`` -> ``sub/a``."""
    name = str(name)
    low = name.lower()
    for suffix in IMAGE_SUFFIXES + ARRAY_SUFFIXES + (".nii.gz", ".nii") + DICOM_SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def relative_id(path: Path, root: Path) -> str:
    """The id of ``root/sub/name.ext``: ``sub/name`` (the one id rule for files in folders)."""
    rel = Path(path).relative_to(root).as_posix()
    return file_stem(rel)


# --------------------------------------------------------------------------------------------- 2D images

def read_image(source: str | os.PathLike | bytes, where: str | None = None) -> np.ndarray:
    """Decode an image file (a path or its bytes) to its stored values: ``[H, W]`` or ``[H, W, C]``.

    The dtype is the file's (uint8, uint16, int32, float32); palette images become RGB(A), 1-bit
    images L, CMYK RGB. Errors name the file on one line.
    """
    from PIL import Image

    where = where or ("image bytes" if isinstance(source, bytes) else str(source))
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            if im.mode in ("P", "PA"):
                im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
            elif im.mode == "1":
                im = im.convert("L")
            elif im.mode == "CMYK":
                im = im.convert("RGB")
            return np.asarray(im)
    except Exception as exc:
        raise LatentmedError(f"{where}: cannot read image ({type(exc).__name__}: {one_line(exc, 200)}); "
                             f"{BAD_HINT}.") from exc


def image_header(path: Path, verify: bool = False) -> tuple[tuple[int, int, int], bool]:
    """``((channels, H, W), eight_bit)`` of an image file from its header (``verify``: check the data too)."""
    from PIL import Image

    with Image.open(path) as im:
        bands = len(im.getbands()) if im.mode not in ("P", "PA") else (
            4 if "transparency" in im.info or im.mode == "PA" else 3)
        chw = ({"CMYK": 3, "YCbCr": 3}.get(im.mode, bands), im.height, im.width)
        eight_bit = im.mode in EIGHT_BIT_MODES
        if verify:
            im.verify()
    return chw, eight_bit


# --------------------------------------------------------------------------------------------- NIfTI

def open_nifti(path: Path):
    """The nibabel image of ``path`` (header only; data are read on demand), or a one-line error naming it."""
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


def nifti_shape(img, path: Path) -> tuple[int, int, int]:
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
    size = Path(path).stat().st_size
    try:
        offset = int(getattr(img.dataobj, "offset", 0) or 0)
    except (TypeError, ValueError, OverflowError):
        offset = 0
    # deflate compresses at most ~1032:1, so a .nii.gz cannot hold more than that
    if nbytes > (size * 1032 + 65536 if Path(path).name.lower().endswith(".gz") else size - offset):
        raise LatentmedError(f"{path}: the header declares shape {shape} ({nbytes} bytes of voxels) but the file "
                             f"has {size} bytes (truncated or corrupt); {BAD_HINT}.")
    return shape  # type: ignore[return-value]


def nifti_affine(img) -> np.ndarray:
    """The voxel-to-RAS (mm) affine of a nibabel image (identity when the file has none)."""
    affine = img.affine
    return np.eye(4) if affine is None else np.asarray(affine, dtype=float)


def read_nifti(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """``(data as stored, affine, voxel spacing in mm)`` of a NIfTI file; errors name the file on one line."""
    from latentmed.data.notices import reading

    path = Path(path)
    if not path.is_file():
        raise LatentmedError(f"{path}: file not found (expected a .nii or .nii.gz file).")
    img = open_nifti(path)
    with reading(path, "NIfTI data"):
        nifti_shape(img, path)
        data = np.asanyarray(img.dataobj)
    return data, nifti_affine(img), tuple(float(z) for z in img.header.get_zooms())


def write_nifti(array: np.ndarray, path: str | os.PathLike, spacing=(1.0, 1.0, 1.0),
                affine: np.ndarray | None = None, dtype=None) -> Path:
    """Atomically write ``array`` as NIfTI with ``affine`` or a diagonal one of ``spacing`` (mm).

    ``dtype``: store as this type (``np.uint8`` for masks and label maps); bool becomes uint8.
    """
    import nibabel as nib

    from latentmed.io import atomic_path

    array = np.asarray(array, dtype=dtype)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    affine = np.diag([*map(float, spacing), 1.0]) if affine is None else np.asarray(affine, float)
    img = nib.Nifti1Image(array, affine)
    img.header.set_zooms(tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))[: array.ndim])
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)


__all__ = ["IMAGE_SUFFIXES", "ARRAY_SUFFIXES", "NIFTI_SUFFIXES", "DICOM_SUFFIXES", "SIDE_SUFFIXES",
           "is_image_file", "is_nifti", "is_dicom", "file_stem", "relative_id", "read_image", "image_header",
           "open_nifti", "nifti_shape", "nifti_affine", "read_nifti", "write_nifti"]
