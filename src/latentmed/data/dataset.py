"""``open_images``: one entry point for 2D images from folders, arrays, NIfTI and DICOM.

Items are dicts ``{"image": FloatTensor[C, H, W] in [-1, 1], "id": str}`` plus ``"labels"``
(``{column: float tensor}``, NaN when missing) when labels are attached. Reading is lazy: a
folder is listed (image headers only) when opened and each image is decoded on access; an
optional cache (a ``.npy`` memmap plus a JSON sidecar) holds the preprocessed images.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from latentmed.data import transforms as T
from latentmed.data import volumes as V
from latentmed.errors import LatentmedError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
ARRAY_SUFFIXES = (".npy", ".npz")
_BAD_HINT = V.BAD_HINT


# --------------------------------------------------------------------------------------------- sources
# A source lists item ids and reads item i as float32 [C, H, W] in [0, 1] at its native size.

class _FolderSource:
    def __init__(self, root: Path, files: list[Path], value_range, eight_bit: bool = False, shapes=None):
        self.root, self.files, self.value_range, self.eight_bit = root, files, value_range, eight_bit
        self.ids = [f.relative_to(root).with_suffix("").as_posix() for f in files] if root.is_dir() else [files[0].stem]
        self.shapes = shapes or []  # (C, H, W) per file from its header

    def where(self, i: int) -> str:
        return str(self.files[i])

    name_of = where

    def read(self, i: int) -> np.ndarray:
        from PIL import Image

        path = self.files[i]
        try:
            with Image.open(path) as im:
                if im.mode in ("P", "PA"):
                    im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
                elif im.mode == "1":
                    im = im.convert("L")
                elif im.mode == "CMYK":
                    im = im.convert("RGB")
                arr = np.asarray(im)
        except Exception as exc:
            raise LatentmedError(f"{path}: cannot read image ({type(exc).__name__}: {exc}); {_BAD_HINT}.") from exc
        arr = T.to_unit_range(arr, self.value_range)
        return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)


class _ArraySource:
    def __init__(self, array, ids: list[str], value_range, where: str):
        self.array, self.ids, self.value_range, self.where_ = array, ids, value_range, where
        self.eight_bit = array.dtype == np.uint8 and value_range is None

    def where(self, i: int) -> str:
        return f"{self.where_}[{i}]"

    def read(self, i: int) -> np.ndarray:
        a = np.asarray(self.array[i])
        a = T.to_unit_range(a, self.value_range)
        if a.ndim == 2:
            return a[None]
        if a.ndim == 3 and a.shape[-1] in (1, 2, 3, 4) and a.shape[0] not in (1, 2, 3, 4):
            return np.moveaxis(a, -1, 0)  # HWC -> CHW
        if a.ndim == 3:
            return a
        raise LatentmedError(f"{self.where(i)}: expected a 2D image or [H, W, C]/[C, H, W]; got shape {a.shape}.")

    def name_of(self, i: int) -> str:
        return self.where_

    @property
    def shapes(self) -> list[tuple[int, int, int]]:
        """(C, H, W) per item, from the array's shape (as :meth:`read` lays it out)."""
        s = tuple(int(v) for v in self.array.shape[1:])
        if len(s) == 2:
            chw = (1, *s)
        elif len(s) == 3 and s[-1] in (1, 2, 3, 4) and s[0] not in (1, 2, 3, 4):
            chw = (s[2], s[0], s[1])
        else:
            chw = s if len(s) == 3 else (0, 0, 0)
        return [chw] * len(self.ids)  # type: ignore[list-item]


class _VolumeSource:
    """Slices of volumes: every slice along ``axis``, given indices, or one per centroid.

    A volume with one slice (a DICOM image, a 2D NIfTI) is one 2D image whatever ``axis``
    (see :func:`latentmed.data.volumes.slicing_how`). With ``skip_bad`` each volume is read once
    when opened and unreadable ones are left out (``skipped``).
    """

    eight_bit = False

    def __init__(self, vols: list[V.Volume], axis, slices, centroids, window, crop, value_range,
                 skip_bad: bool = False):
        self.axis, self.window = axis, V.resolve_window(window)
        self.crop, self.value_range = crop, value_range
        slices = V.parse_slices(slices)
        self.items: list[tuple[int, int, tuple[float, float] | None]] = []  # (volume, k, in-plane centre)
        self.ids: list[str] = []
        self.shapes: list[tuple[int, int, int]] = []  # (C, H, W) per item, before resize
        self.vols: list[V.Volume] = []
        self._how: list[tuple] = []
        self.is_single: list[bool] = []  # per volume: one 2D image
        self.skipped: list[str] = []
        self._range: dict[int, tuple[float, float]] = {}
        self._loaded = None  # (volume index, oriented data); one volume kept in memory
        self._raw = None  # (volume index, data) of a DICOM series read while opening
        self.report = None  # where the NaN-replacement notice goes (set by open_images)
        self._nan_said = False
        if centroids is not None and len(vols) != 1:
            raise LatentmedError(f"centroids apply to one volume; got {len(vols)} volumes. Open each volume "
                                 "with its own centroid file.")
        for vol in vols:
            n_items, n_vols = len(self.items), len(self.vols)
            try:
                self._add(vol, slices, centroids)
                if skip_bad:  # read it once now, so that a bad file is left out rather than failing later
                    self._oriented(n_vols)
            except LatentmedError as exc:
                if not skip_bad:
                    raise
                del self.items[n_items:], self.ids[n_items:], self.shapes[n_items:]
                del self.vols[n_vols:], self._how[n_vols:], self.is_single[n_vols:]
                self._loaded = None
                self.skipped.append(V.one_line(exc, 200))

    def _add(self, vol: V.Volume, slices, centroids) -> None:
        vi = len(self.vols)
        with V.reading(vol.path, "volume header"):
            if vol.kind == "dicom":  # a DICOM header means reading the series: keep it for the first read
                data, affine = vol.load()
                raw_shape, self._raw = data.shape, (vi, data)
            else:
                raw_shape, affine = vol.header()
            shape, point_map, how = V.slicing_plan(raw_shape, affine, self.axis, vol.kind, vol.path)
        self.vols.append(vol)
        self._how.append(how)
        single = V.single_slice_axis(raw_shape) is not None
        self.is_single.append(single)
        chw = (int(raw_shape[3]) if len(raw_shape) > 3 else 1, shape[1], shape[2])
        n = shape[0]
        if centroids is not None:
            pts = V.centroids_to_voxels(V.load_centroids(centroids), affine, raw_shape)
            for name, xyz in pts:
                kij = point_map(xyz)
                if not all(-0.5 <= kij[a] <= shape[a] - 0.5 for a in range(3)):
                    raise LatentmedError(f"centroid {name} at voxel {np.round(xyz, 1).tolist()} is outside "
                                         f"{vol.path} with shape {list(raw_shape)}; check the "
                                         "centroid file belongs to this volume and its 'direction'.")
                self.items.append((vi, int(round(kij[0])), (float(kij[1]), float(kij[2]))))
                self.ids.append(f"{vol.name}_{name}")
                self.shapes.append(chw if self.crop is None else (chw[0], *T._as_hw(self.crop)))
            return
        for k in (range(n) if slices is None else slices):
            k = int(k)
            if not 0 <= k < n:
                raise LatentmedError(f"slice {k} is out of range for axis {self.axis!r} of {vol.path} "
                                     f"({n} slice{'s' if n > 1 else ''}): use 0..{n - 1}.")
            self.items.append((vi, k, None))
            self.ids.append(vol.name if single else f"{vol.name}_{k:04d}")
            self.shapes.append(chw if self.crop is None else (chw[0], *T._as_hw(self.crop)))

    def __getstate__(self):  # do not ship a loaded volume (or a console callback) to DataLoader workers
        return {**self.__dict__, "_loaded": None, "_raw": None, "report": None}

    def _oriented(self, vi: int) -> np.ndarray:
        if self._loaded is not None and self._loaded[0] == vi:
            return self._loaded[1]
        vol = self.vols[vi]
        with V.reading(vol.path, "volume"):
            if self._raw is not None and self._raw[0] == vi:
                data, self._raw = self._raw[1], None
            else:
                data, _ = vol.load()
            if vol.replaced and not self._nan_said:  # said once per data set
                self._nan_said = True
                V.notify(self.report, f"replaced {vol.replaced} NaN/inf voxel(s) of {vol.path} by {vol.nan_to!r} "
                                      "(further replacements in these data are not announced)")
            oriented = V.orient_for_slicing(data, self._how[vi])
            if self.value_range is not None:
                self._range[vi] = tuple(self.value_range)
            elif self.window is not None:
                self._range[vi] = self.window
            elif oriented.ndim == 4:  # colour: the stored bit depth, not min-max (keeps colours)
                self._range[vi] = (0.0, 255.0 if float(oriented.max()) <= 255 else 65535.0)
            else:  # no window: the volume's own min-max
                lo, hi = float(np.min(oriented)), float(np.max(oriented))
                self._range[vi] = (lo, hi if hi > lo else lo + 1.0)
        self._loaded = (vi, oriented)
        return oriented

    def name_of(self, i: int) -> str:
        return str(self.vols[self.items[i][0]].path)

    def where(self, i: int) -> str:
        vi, k, _ = self.items[i]
        vol = self.vols[vi]
        return str(vol.path) if self.ids[i] == vol.name else f"{vol.path} (slice {k} along axis {self.axis!r})"

    def read(self, i: int) -> np.ndarray:
        vi, k, centre = self.items[i]
        data = self._oriented(vi)
        plane = np.asarray(data[k], dtype=np.float32)
        if plane.ndim == 3:  # colour [H, W, C] -> [C, H, W]
            plane = np.moveaxis(plane, -1, 0)
        lo = self._range[vi][0]
        if self.crop is not None:
            c = centre if centre is not None else ((plane.shape[-2] - 1) / 2, (plane.shape[-1] - 1) / 2)
            plane = T.crop_at(plane, c, self.crop, fill=min(lo, float(plane.min())))
        out = T.to_unit_range(plane, self._range[vi])
        return out[None] if out.ndim == 2 else out


# --------------------------------------------------------------------------------------------- dataset

class ImageDataset(Dataset):
    """Map-style dataset of 2D images in [-1, 1]; see :func:`open_images`."""

    def __init__(self, source, *, size=None, channels: int = 1, transform: Callable | None = None,
                 skip_bad: bool = False, description: str = "", report: Callable[[str], None] | None = None):
        if channels not in (1, 3):
            raise LatentmedError(f"channels must be 1 (grayscale) or 3 (RGB); got {channels}.")
        self._source = source
        self._index = list(range(len(source.ids)))
        self.size = T._as_hw(size) if size is not None else None
        self.channels = channels
        self.transform = transform
        self.skip_bad = skip_bad
        self.description = description
        self.report = report  # where notices go (None: DataNotice warnings)
        self.labels = None  # pandas DataFrame aligned to ids, when attached
        self._label_columns: list[str] = []
        self._cache: np.ndarray | None = None
        self._native_hw: tuple[int, int] | None = None

    # -- basic protocol
    def __len__(self) -> int:
        return len(self._index)

    @property
    def ids(self) -> list[str]:
        return [self._source.ids[j] for j in self._index]

    @property
    def image_size(self) -> int | tuple[int, int]:
        """Output height/width: an ``int`` for square images, else ``(H, W)``."""
        h, w = self.size if self.size is not None else self._native_size()
        return h if h == w else (h, w)

    def _native_size(self) -> tuple[int, int]:
        if self._native_hw is None:
            self._native_hw = tuple(self._read_raw(0).shape[-2:])  # type: ignore[assignment]
        return self._native_hw

    def _read_raw(self, i: int) -> torch.Tensor:
        """Item i as [C, H, W] in [-1, 1] after resize and channel conversion (before ``transform``)."""
        if self._cache is not None:
            arr = np.asarray(self._cache[i])
            x = torch.from_numpy(arr.astype(np.float32) / 127.5 - 1.0 if arr.dtype == np.uint8 else
                                 arr.astype(np.float32))
            return x
        j = self._index[i]
        where = self._source.where(j)
        try:
            x = T.to_signed(self._source.read(j))
            x = T.to_channels(x, self.channels)
            if self.size is not None:
                x = T.resize_center_crop(x, self.size)
        except LatentmedError as exc:
            if self._source.name_of(j) in str(exc) and "\n" not in str(exc):
                raise
            raise LatentmedError(f"{where}: {V.one_line(exc)}") from exc
        except Exception as exc:  # anything else a damaged file provokes still names the file, on one line
            raise LatentmedError(f"{where}: cannot read image ({type(exc).__name__}: {V.one_line(exc, 200)}); "
                                 f"{_BAD_HINT}.") from exc
        if self.size is None and self._native_hw is not None and tuple(x.shape[-2:]) != self._native_hw:
            raise LatentmedError(
                f"{self._source.where(self._index[i])}: image size {tuple(x.shape[-2:])} differs from "
                f"{self._native_hw} of the first image; pass size=... (CLI: --size) to resize all images.")
        return x

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)} images")
        i = i % len(self)
        if self._native_hw is None and self.size is None and self._cache is None:
            self._native_size()
        tried = 0
        while True:
            try:
                x = self._read_raw(i)
                break
            except LatentmedError as exc:
                if not self.skip_bad or tried >= len(self):
                    raise
                V.notify(self.report, f"skipping unreadable item: {exc}")
                i, tried = (i + 1) % len(self), tried + 1
        if self.transform is not None:
            x = self.transform(x)
        item = {"image": x, "id": self.ids[i]}
        if self.labels is not None:
            row = self.labels.iloc[i]
            item["labels"] = {c: torch.tensor(float(row[c]), dtype=torch.float32) for c in self._label_columns}
        return item

    def changes(self) -> list[str]:
        """What reading changes in the images, one sentence per kind (channels, size, 3D -> 2D), with counts.

        Worked out from the headers when the data were opened (no image is decoded).
        """
        src, notes = self._source, []
        shapes = [src.shapes[j] for j in self._index] if getattr(src, "shapes", None) else []
        n = len(shapes)
        if isinstance(src, _VolumeSource):
            n_single = sum(src.is_single)
            n_vol = len(src.vols) - n_single
            if n_vol:
                n_sliced = sum(1 for vi, _, _ in src.items if not src.is_single[vi])
                notes.append(f"cut {n_vol} 3D volume(s) into {n_sliced} 2D slice(s) along axis {src.axis!r}"
                             + (f" (window {src.window[0]:g}..{src.window[1]:g})" if src.window else ""))
            if n_single:
                notes.append(f"read {n_single} single-slice file(s) as one 2D image each")
        conv: dict[str, int] = {}
        for c, _, _ in shapes:
            if c in (2, 4):
                conv["dropped the alpha channel of"] = conv.get("dropped the alpha channel of", 0) + 1
            base = {2: 1, 4: 3}.get(c, c)
            if base == 3 and self.channels == 1:
                conv["converted RGB to grayscale (luma):"] = conv.get("converted RGB to grayscale (luma):", 0) + 1
            elif base == 1 and self.channels == 3:
                conv["repeated grayscale to 3 channels:"] = conv.get("repeated grayscale to 3 channels:", 0) + 1
        notes += [f"{what} {k} of {n} image(s)" for what, k in conv.items()]
        if self.size is not None and shapes:
            th, tw = self.size
            sizes: dict[tuple[int, int], int] = {}
            for _, h, w in shapes:
                if (h, w) != (th, tw):
                    sizes[(h, w)] = sizes.get((h, w), 0) + 1
            if sizes:
                k = sum(sizes.values())
                shown = ", ".join(f"{h}x{w}: {m}" for (h, w), m in sorted(sizes.items(), key=lambda kv: -kv[1])[:4])
                cropped = sum(m for (h, w), m in sizes.items() if h * tw != w * th)
                notes.append(f"resized {k} of {n} image(s) to {th}x{tw} (from {shown}"
                             + (" ..." if len(sizes) > 4 else "") + ")"
                             + (f"; {cropped} centre-cropped to the aspect ratio" if cropped else ""))
        return notes

    def __repr__(self) -> str:
        lab = f", labels={self._label_columns}" if self.labels is not None else ""
        return (f"ImageDataset({self.description or type(self._source).__name__}, n={len(self)}, "
                f"image_size={self.image_size}, channels={self.channels}{lab})")

    # -- labels
    def attach_labels(self, labels, columns: Sequence[str] | None = None, strict: bool = True) -> "ImageDataset":
        """Attach labels (a CSV path or a DataFrame from :func:`read_labels`) aligned to :attr:`ids`."""
        from pandas.api.types import is_numeric_dtype

        from latentmed.data.labels import align_labels, read_labels

        if isinstance(labels, (str, os.PathLike)):
            labels = read_labels(labels, ids=self.ids, columns=columns, strict=strict)
        aligned = align_labels(labels, self.ids)
        numeric = [c for c in aligned.columns if is_numeric_dtype(aligned[c])]
        self.labels, self._label_columns = aligned, numeric
        return self

    def subset(self, ids: Sequence[str]) -> "ImageDataset":
        """A view on the given ids (same settings, labels kept)."""
        import copy

        pos = {k: n for n, k in enumerate(self.ids)}
        missing = [k for k in ids if k not in pos]
        if missing:
            raise LatentmedError(f"{len(missing)} id(s) not in the dataset, e.g. {missing[:3]}.")
        out = copy.copy(self)
        out._index = [self._index[pos[k]] for k in ids]
        if self._cache is not None:  # cache rows follow dataset positions
            out._cache = self._cache[[pos[k] for k in ids]]
        if self.labels is not None:
            out.labels = self.labels.loc[list(ids)]
        return out

    # -- cache
    def _fingerprint(self) -> dict:
        return {"source": self.description, "ids_sha1": hashlib.sha1("\n".join(self.ids).encode()).hexdigest(),
                "n": len(self), "size": list(self.size) if self.size else None, "channels": self.channels}

    def build_cache(self, path: str | os.PathLike, callback: Callable[[int, int], None] | None = None) -> Path:
        """Preprocess every image (before ``transform``) into a ``.npy`` memmap at ``path`` and use it.

        8-bit sources are stored as uint8 (after a resize, values are rounded to 1/255 steps, as
        when saving a resized PNG), others as float16. A JSON sidecar ``<path>.json``
        records the settings; a cache built for other data or settings is refused.
        """
        from latentmed.io import atomic_path, write_json

        path = Path(path)
        if path.suffix != ".npy":
            raise LatentmedError(f"cache path {path} must end in .npy.")
        self._cache = None
        first = self._read_raw(0)
        if self.size is None:
            self._native_hw = tuple(first.shape[-2:])  # type: ignore[assignment]
        dtype = np.uint8 if getattr(self._source, "eight_bit", False) else np.float16
        with atomic_path(path) as tmp:
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(self), *first.shape))
            for i in range(len(self)):
                x = self._read_raw(i).numpy()
                mm[i] = np.round((x + 1.0) * 127.5).clip(0, 255) if dtype == np.uint8 else x
                if callback is not None:
                    callback(i + 1, len(self))
            mm.flush()
            del mm
        write_json(path.with_suffix(".npy.json"), {**self._fingerprint(), "dtype": np.dtype(dtype).name,
                                                   "shape": [len(self), *first.shape]})
        return self.use_cache(path)

    def use_cache(self, path: str | os.PathLike) -> Path:
        """Read items from a cache built by :meth:`build_cache` (checked against this dataset)."""
        from latentmed.io import read_json

        path = Path(path)
        meta = read_json(path.with_suffix(".npy.json"))
        mine = self._fingerprint()
        diff = [k for k in mine if meta.get(k) != mine[k]]
        if diff:
            raise LatentmedError(f"cache {path} was built for other data or settings (differs in {diff}); "
                                 "delete it or choose another cache path.")
        self._cache = np.load(path, mmap_mode="r")
        return path


# --------------------------------------------------------------------------------------------- entry

def _list_folder(root: Path, report=None) -> tuple[list[Path], list[Path], list[Path], list[Path]]:
    """Image, array, NIfTI and DICOM files under ``root``; other files are announced as ignored."""
    images, arrays, niftis, dicoms, other = [], [], [], [], []
    for f in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        suf = f.suffix.lower()
        if suf in IMAGE_SUFFIXES:
            images.append(f)
        elif suf in ARRAY_SUFFIXES:
            arrays.append(f)
        elif V.is_nifti(f):
            niftis.append(f)
        elif V.is_dicom(f):
            dicoms.append(f)
        elif f.suffix.lower() not in _SIDE_FILES:
            other.append(f)
    if other and (images or niftis or dicoms):
        V.notify(report, f"ignored {len(other)} file(s) in {root} that are not images, NIfTI or DICOM (no "
                         f"'DICM' marker), e.g. {', '.join(f.name for f in other[:3])}")
    return images, arrays, niftis, dicoms


def _relative_stem(f: Path, root: Path) -> str:
    """``sub/name`` for ``root/sub/name.nii.gz`` (ids stay unique across subfolders)."""
    parent = f.parent.relative_to(root).as_posix()
    return V.volume_stem(f) if parent == "." else f"{parent}/{V.volume_stem(f)}"


_SIDE_FILES = (".csv", ".json", ".txt", ".md", ".yaml", ".yml", ".tsv")


_EIGHT_BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr"}


def _scan_images(files: list[Path], skip_bad: bool, need_sizes: bool, report=None
                 ) -> tuple[list[Path], bool, list[tuple[int, int, int]]]:
    """Open each image's header (and verify it when skipping bad files); check sizes agree.

    Returns the readable files, whether all of them are 8-bit, and their (channels, H, W).
    """
    from PIL import Image

    good, bad, sizes, eight_bit, shapes = [], [], {}, True, []
    for f in files:
        try:
            with Image.open(f) as im:
                hw = (im.height, im.width)
                eight_bit = eight_bit and im.mode in _EIGHT_BIT_MODES
                bands = len(im.getbands()) if im.mode not in ("P", "PA") else (
                    4 if "transparency" in im.info or im.mode == "PA" else 3)
                chw = ({"CMYK": 3, "YCbCr": 3}.get(im.mode, bands), *hw)
                if skip_bad:
                    im.verify()
        except Exception as exc:
            if not skip_bad:
                raise LatentmedError(f"{f}: cannot read image ({type(exc).__name__}: {exc}); {_BAD_HINT}.") from exc
            bad.append(f"{f.name} ({type(exc).__name__})")
            continue
        good.append(f)
        shapes.append(chw)
        sizes.setdefault(hw, f)
    if bad:
        V.notify(report, f"skipped {len(bad)} unreadable file(s): {', '.join(bad[:10])}"
                 + (" ..." if len(bad) > 10 else ""))
    if need_sizes and len(sizes) > 1:
        shown = ", ".join(f"{h}x{w} (e.g. {p.name})" for (h, w), p in list(sizes.items())[:4])
        raise LatentmedError(f"images have different sizes: {shown}; pass size=N (CLI: --size N) to resize and "
                             "centre-crop them all to NxN.")
    return good, eight_bit, shapes


def _open_npz(path: Path, split: str | None, value_range):
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise LatentmedError(f"{path}: cannot read .npz ({exc}).") from exc
    keys = list(z.files)
    splits = [k[: -len("_images")] for k in keys if k.endswith("_images")]
    if splits:  # MedMNIST layout
        split = split or ("train" if "train" in splits else splits[0])
        if split not in splits:
            raise LatentmedError(f"{path}: no split {split!r}; available splits: {', '.join(splits)}.")
        images = z[f"{split}_images"]
        labels = z[f"{split}_labels"] if f"{split}_labels" in keys else None
        ids = [f"{split}_{i:05d}" for i in range(len(images))]
        return _ArraySource(images, ids, value_range, f"{path}:{split}_images"), labels
    key = "images" if "images" in keys else (keys[0] if len(keys) == 1 else None)
    if key is None:
        raise LatentmedError(f"{path}: cannot tell which array holds the images (keys {keys}); name it 'images' "
                             "or use the MedMNIST layout ('train_images', ...).")
    arr = z[key]
    return _ArraySource(arr, [f"{path.stem}_{i:05d}" for i in range(len(arr))], value_range, f"{path}:{key}"), None


def open_images(source, *, size=None, channels: int = 1, axis="sagittal", slices=None, centroids=None,
                window=None, crop=None, cache=None, skip_bad: bool = False, transform: Callable | None = None,
                split: str | None = None, labels=None, value_range=None, nan_to=None,
                report: Callable[[str], None] | None = None) -> ImageDataset:
    """Open 2D images from a folder, an array file, NIfTI or DICOM as an :class:`ImageDataset`.

    Args:
        source: a folder of PNG/JPEG/TIFF/BMP images (searched recursively; id = relative path
            without suffix), a ``.npy``/``.npz`` file (MedMNIST layout ``train_images``... with
            ``split``), an array ``[N, H, W(, C)]``, a NIfTI file, a DICOM file, or a folder of
            NIfTI volumes / DICOM series.
        size: resize (keeping aspect) and centre-crop to ``size`` (int or ``(H, W)``). Without it
            all images must share one size.
        channels: 1 (grayscale; RGB is converted to luma) or 3 (gray is repeated).
        axis, slices, centroids, window, crop: volumes only: slice axis (0/1/2 or
            ``"sagittal"``/``"coronal"``/``"axial"``), slice indices (default: all; a list, an int
            or text ``"10,20,30:40"``), a centroid JSON (VerSe layout) / dict / list giving the
            slice through each point, a CT window ``(centre, width)`` in HU, ``"centre,width"`` or
            a preset (``"bone"``, ``"soft_tissue"``, ...), and a crop size around each point. A
            file holding one slice (a DICOM image, a 2D NIfTI) is one 2D image whatever ``axis``.
        nan_to: volumes: NaN/inf voxels are an error naming the file (``None``), or become this
            number, or the volume's smallest finite value (``"min"``).
        cache: ``.npy`` path of a preprocessed cache (built on first use, checked afterwards).
        skip_bad: skip unreadable files (images, NIfTI volumes, DICOM files) instead of raising;
            each skip is announced. Volumes are then read once when opened.
        report: called with each notice (skipped files, resizes, channel conversions, volumes cut
            into slices), once per kind; default: :class:`~latentmed.data.volumes.DataNotice` warnings.
        transform: callable on the ``[C, H, W]`` tensor in [-1, 1] (e.g. augmentation), applied on access.
        labels: a labels CSV (``id`` column) or DataFrame to attach; MedMNIST labels attach themselves.
        value_range: raw intensity range mapped to [-1, 1] (default: from the dtype; see
            :func:`latentmed.data.transforms.to_unit_range`).
    """
    mm_labels = None
    if isinstance(source, np.ndarray) or isinstance(source, torch.Tensor):
        arr = np.asarray(source)
        if arr.ndim not in (3, 4) or len(arr) == 0:
            raise LatentmedError(f"an image array must be [N, H, W] or [N, H, W, C] / [N, C, H, W] with N > 0; "
                                 f"got shape {arr.shape}.")
        src, desc = _ArraySource(arr, [f"{i:05d}" for i in range(len(arr))], value_range, "array"), "array"
    else:
        path = Path(source)
        desc = str(path)
        if not path.exists():
            raise LatentmedError(f"{path}: no such file or folder (expected an image folder, .npy/.npz, "
                                 "NIfTI or DICOM).")
        nan_to = V.parse_nan_to(nan_to)
        vol_kwargs = dict(axis=axis, slices=slices, centroids=centroids, window=window, crop=crop,
                          value_range=value_range, skip_bad=skip_bad and path.is_dir())
        if path.is_dir():
            images, arrays, niftis, dicoms = _list_folder(path, report)
            kinds = {k: v for k, v in dict(images=images, nifti=niftis, dicom=dicoms).items() if v}
            if len(kinds) > 1:
                raise LatentmedError(f"{path} mixes {' and '.join(f'{len(v)} {k}' for k, v in kinds.items())} files; "
                                     "put each kind in its own folder.")
            if niftis:
                vols = [V.Volume(path=f, name=_relative_stem(f, path), kind="nifti", nan_to=nan_to)
                        for f in niftis]
                src = _VolumeSource(vols, **vol_kwargs)
            elif dicoms:
                vols = V.group_dicom_series(dicoms, skip_bad=skip_bad, report=report)
                src = _VolumeSource([dataclasses.replace(v, nan_to=nan_to) for v in vols], **vol_kwargs)
            elif images:
                files, eight_bit, shapes = _scan_images(images, skip_bad, need_sizes=size is None, report=report)
                if not files:
                    raise LatentmedError(f"{path}: none of the {len(images)} image files could be read.")
                src = _FolderSource(path, files, value_range, eight_bit and value_range is None, shapes)
            else:
                hint = f" (found {len(arrays)} .npy/.npz file(s): pass one of them)" if arrays else ""
                raise LatentmedError(f"{path}: no images found (looked for {', '.join(IMAGE_SUFFIXES)}, NIfTI "
                                     f"and DICOM files){hint}.")
        else:
            suf = path.suffix.lower()
            if suf == ".npy":
                try:
                    arr = np.load(path, mmap_mode="r", allow_pickle=False)
                except Exception as exc:
                    raise LatentmedError(f"{path}: cannot read .npy ({exc}).") from exc
                if arr.ndim not in (3, 4):
                    raise LatentmedError(f"{path}: array of shape {arr.shape}; expected [N, H, W] or [N, H, W, C].")
                src = _ArraySource(arr, [f"{path.stem}_{i:05d}" for i in range(len(arr))], value_range, str(path))
            elif suf == ".npz":
                src, mm_labels = _open_npz(path, split, value_range)
                desc = f"{path}:{split or 'default'}"
            elif V.is_nifti(path):
                src = _VolumeSource([V.Volume(path=path, name=V.volume_stem(path), kind="nifti", nan_to=nan_to)],
                                    **vol_kwargs)
            elif V.is_dicom(path):
                vols = [dataclasses.replace(v, nan_to=nan_to) for v in V.group_dicom_series([path])]
                src = _VolumeSource(vols, **vol_kwargs)
            elif suf in IMAGE_SUFFIXES:
                files, eight_bit, shapes = _scan_images([path], False, False)
                src = _FolderSource(path, files, value_range, eight_bit and value_range is None, shapes)
            else:
                raise LatentmedError(f"{path}: unsupported file type {suf!r}; expected an image folder, .npy/.npz, "
                                     ".nii/.nii.gz or .dcm.")
        if isinstance(src, _VolumeSource):
            src.report = report
            desc += (f" axis={axis} window={window} crop={crop} centroids={centroids is not None} slices={slices}"
                     + (f" nan_to={nan_to}" if nan_to is not None else ""))
            if src.skipped:
                V.notify(report, f"skipped {len(src.skipped)} unreadable volume(s): " + "; ".join(src.skipped[:3])
                         + (" ..." if len(src.skipped) > 3 else ""))
    where = desc.split(" axis=")[0]  # messages name the file or folder; desc also keys the cache
    if len(src.ids) == 0:
        skipped = getattr(src, "skipped", [])
        if skipped:
            raise LatentmedError(f"{where}: none of its {len(skipped)} volume(s) could be read; first: {skipped[0]}")
        raise LatentmedError(f"{where}: no images found.")
    if len(set(src.ids)) != len(src.ids):
        seen, dup = set(), []
        for k in src.ids:
            (dup.append(k) if k in seen else seen.add(k))
        raise LatentmedError(f"{where}: duplicate image ids {dup[:5]} (e.g. a.png and a.jpg); rename the files.")
    if size is None and len({tuple(hw[1:]) for hw in getattr(src, "shapes", [])}) > 1:
        sizes = {}
        for k, (_, h, w) in zip(src.ids, src.shapes):
            sizes.setdefault((h, w), k)
        shown = ", ".join(f"{h}x{w} (e.g. {k})" for (h, w), k in list(sizes.items())[:4])
        raise LatentmedError(f"{where}: images have different sizes: {shown}; pass size=N (CLI: --size N) to resize "
                             "and centre-crop them all to NxN.")
    ds = ImageDataset(src, size=size, channels=channels, transform=transform, skip_bad=skip_bad, description=desc,
                      report=report)
    for note in ds.changes():
        V.notify(report, note)
    if mm_labels is not None and labels is None:
        import pandas as pd

        lab = np.asarray(mm_labels).reshape(len(src.ids), -1)
        cols = ["label"] if lab.shape[1] == 1 else [f"label_{j}" for j in range(lab.shape[1])]
        ds.attach_labels(pd.DataFrame(lab.astype(float), index=pd.Index(src.ids, name="id"), columns=cols))
    if labels is not None:
        ds.attach_labels(labels)
    if cache is not None:
        cache = Path(cache)
        if cache.exists():
            ds.use_cache(cache)
        else:
            ds.build_cache(cache)
    return ds
