"""``open_images``: one entry point for 2D images from folders, arrays, NIfTI and DICOM.

Items are dicts ``{"image": FloatTensor[C, H, W] in [-1, 1], "id": str}`` plus ``"labels"``
(``{column: float tensor}``, NaN when missing) when labels are attached. Reading is lazy: a
folder is listed (image headers only) when opened and each image is decoded on access; an
optional cache (a ``.npy`` memmap plus a JSON sidecar) holds the preprocessed images.
"""

from __future__ import annotations

import hashlib
import os
import warnings
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
_BAD_HINT = "remove or fix the file, or pass skip_bad=True (CLI: --skip-bad) to skip unreadable files"


# --------------------------------------------------------------------------------------------- sources
# A source lists item ids and reads item i as float32 [C, H, W] in [0, 1] at its native size.

class _FolderSource:
    def __init__(self, root: Path, files: list[Path], value_range, eight_bit: bool = False):
        self.root, self.files, self.value_range, self.eight_bit = root, files, value_range, eight_bit
        self.ids = [f.relative_to(root).with_suffix("").as_posix() for f in files] if root.is_dir() else [files[0].stem]

    def where(self, i: int) -> str:
        return str(self.files[i])

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


class _VolumeSource:
    """Slices of volumes: every slice along ``axis``, given indices, or one per centroid."""

    eight_bit = False

    def __init__(self, vols: list[V.Volume], axis, slices, centroids, window, crop, value_range):
        self.vols, self.axis, self.window = vols, axis, V.resolve_window(window)
        self.crop, self.value_range = crop, value_range
        self.items: list[tuple[int, int, tuple[float, float] | None]] = []  # (volume, k, in-plane centre)
        self.ids: list[str] = []
        self._range: dict[int, tuple[float, float]] = {}
        self._loaded = None
        if centroids is not None and len(vols) != 1:
            raise LatentmedError(f"centroids apply to one volume; got {len(vols)} volumes. Open each volume "
                                 "with its own centroid file.")
        for vi, vol in enumerate(vols):
            raw_shape, affine = vol.header()
            shape, point_map = V.slicing_plan(raw_shape, affine, axis)
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
            else:
                ks = range(n) if slices is None else ([slices] if np.isscalar(slices) else list(slices))
                for k in ks:
                    k = int(k)
                    if not 0 <= k < n:
                        raise LatentmedError(f"slice {k} is out of range for axis {axis!r} of {vol.path} "
                                             f"({n} slices): use 0..{n - 1}.")
                    self.items.append((vi, k, None))
                    self.ids.append(f"{vol.name}_{k:04d}")
        self._loaded = None  # (volume index, oriented data); one volume kept in memory

    def __getstate__(self):  # do not ship a loaded volume to DataLoader workers
        return {**self.__dict__, "_loaded": None}

    def _oriented(self, vi: int) -> np.ndarray:
        if self._loaded is not None and self._loaded[0] == vi:
            return self._loaded[1]
        data, affine = self.vols[vi].load()
        oriented = V.orient_for_slicing(data, affine, self.axis)
        if self.value_range is not None:
            self._range[vi] = tuple(self.value_range)
        elif self.window is not None:
            self._range[vi] = self.window
        else:  # no window: the volume's own min-max
            lo, hi = float(np.min(oriented)), float(np.max(oriented))
            self._range[vi] = (lo, hi if hi > lo else lo + 1.0)
        self._loaded = (vi, oriented)
        return oriented

    def where(self, i: int) -> str:
        vi, k, _ = self.items[i]
        return f"{self.vols[vi].path} (slice {k} along axis {self.axis!r})"

    def read(self, i: int) -> np.ndarray:
        vi, k, centre = self.items[i]
        data = self._oriented(vi)
        plane = np.asarray(data[k], dtype=np.float32)
        lo = self._range[vi][0]
        if self.crop is not None:
            c = centre if centre is not None else ((plane.shape[0] - 1) / 2, (plane.shape[1] - 1) / 2)
            plane = T.crop_at(plane, c, self.crop, fill=min(lo, float(plane.min())))
        return T.to_unit_range(plane, self._range[vi])[None]


# --------------------------------------------------------------------------------------------- dataset

class ImageDataset(Dataset):
    """Map-style dataset of 2D images in [-1, 1]; see :func:`open_images`."""

    def __init__(self, source, *, size=None, channels: int = 1, transform: Callable | None = None,
                 skip_bad: bool = False, description: str = ""):
        if channels not in (1, 3):
            raise LatentmedError(f"channels must be 1 (grayscale) or 3 (RGB); got {channels}.")
        self._source = source
        self._index = list(range(len(source.ids)))
        self.size = T._as_hw(size) if size is not None else None
        self.channels = channels
        self.transform = transform
        self.skip_bad = skip_bad
        self.description = description
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
        x = T.to_signed(self._source.read(self._index[i]))
        x = T.to_channels(x, self.channels)
        if self.size is not None:
            x = T.resize_center_crop(x, self.size)
        elif self._native_hw is not None and tuple(x.shape[-2:]) != self._native_hw:
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
                warnings.warn(f"skipping unreadable item: {exc}", stacklevel=2)
                i, tried = (i + 1) % len(self), tried + 1
        if self.transform is not None:
            x = self.transform(x)
        item = {"image": x, "id": self.ids[i]}
        if self.labels is not None:
            row = self.labels.iloc[i]
            item["labels"] = {c: torch.tensor(float(row[c]), dtype=torch.float32) for c in self._label_columns}
        return item

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

def _list_folder(root: Path) -> tuple[list[Path], list[Path], list[Path], list[Path]]:
    images, arrays, niftis, dicoms = [], [], [], []
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
    return images, arrays, niftis, dicoms


_EIGHT_BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr"}


def _scan_images(files: list[Path], skip_bad: bool, need_sizes: bool) -> tuple[list[Path], bool]:
    """Open each image's header (and verify it when skipping bad files); check sizes agree.

    Returns the readable files and whether all of them are 8-bit.
    """
    from PIL import Image

    good, bad, sizes, eight_bit = [], [], {}, True
    for f in files:
        try:
            with Image.open(f) as im:
                hw = (im.height, im.width)
                eight_bit = eight_bit and im.mode in _EIGHT_BIT_MODES
                if skip_bad:
                    im.verify()
        except Exception as exc:
            if not skip_bad:
                raise LatentmedError(f"{f}: cannot read image ({type(exc).__name__}: {exc}); {_BAD_HINT}.") from exc
            bad.append(f"{f.name} ({type(exc).__name__})")
            continue
        good.append(f)
        sizes.setdefault(hw, f)
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable file(s): {', '.join(bad[:10])}"
                      + (" ..." if len(bad) > 10 else ""), stacklevel=3)
    if need_sizes and len(sizes) > 1:
        shown = ", ".join(f"{h}x{w} (e.g. {p.name})" for (h, w), p in list(sizes.items())[:4])
        raise LatentmedError(f"images have different sizes: {shown}; pass size=N (CLI: --size N) to resize and "
                             "centre-crop them all to NxN.")
    return good, eight_bit


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
                split: str | None = None, labels=None, value_range=None) -> ImageDataset:
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
            ``"sagittal"``/``"coronal"``/``"axial"``), slice indices (default: all), a centroid
            JSON (VerSe layout) / dict / list giving the slice through each point, a CT window
            ``(centre, width)`` in HU or a preset (``"bone"``), and a crop size around each point.
        cache: ``.npy`` path of a preprocessed cache (built on first use, checked afterwards).
        skip_bad: skip unreadable files with a warning naming them instead of raising.
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
        vol_kwargs = dict(axis=axis, slices=slices, centroids=centroids, window=window, crop=crop,
                          value_range=value_range)
        if path.is_dir():
            images, arrays, niftis, dicoms = _list_folder(path)
            kinds = {k: v for k, v in dict(images=images, nifti=niftis, dicom=dicoms).items() if v}
            if len(kinds) > 1:
                raise LatentmedError(f"{path} mixes {' and '.join(f'{len(v)} {k}' for k, v in kinds.items())} files; "
                                     "put each kind in its own folder.")
            if niftis:
                vols = [V.Volume(path=f, name=V.volume_stem(f), kind="nifti") for f in niftis]
                src = _VolumeSource(vols, **vol_kwargs)
            elif dicoms:
                src = _VolumeSource(V.group_dicom_series(dicoms), **vol_kwargs)
            elif images:
                files, eight_bit = _scan_images(images, skip_bad, need_sizes=size is None)
                if not files:
                    raise LatentmedError(f"{path}: none of the {len(images)} image files could be read.")
                src = _FolderSource(path, files, value_range, eight_bit and value_range is None)
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
                src = _VolumeSource([V.Volume(path=path, name=V.volume_stem(path), kind="nifti")], **vol_kwargs)
            elif V.is_dicom(path):
                src = _VolumeSource(V.group_dicom_series([path]), **vol_kwargs)
            elif suf in IMAGE_SUFFIXES:
                files, eight_bit = _scan_images([path], skip_bad, False)
                src = _FolderSource(path, files, value_range, eight_bit and value_range is None)
            else:
                raise LatentmedError(f"{path}: unsupported file type {suf!r}; expected an image folder, .npy/.npz, "
                                     ".nii/.nii.gz or .dcm.")
        if isinstance(src, _VolumeSource):
            desc += f" axis={axis} window={window} crop={crop} centroids={centroids is not None} slices={slices}"
    if len(src.ids) == 0:
        raise LatentmedError(f"{desc}: no images found.")
    if len(set(src.ids)) != len(src.ids):
        seen, dup = set(), []
        for k in src.ids:
            (dup.append(k) if k in seen else seen.add(k))
        raise LatentmedError(f"{desc}: duplicate image ids {dup[:5]} (e.g. a.png and a.jpg); rename the files.")
    ds = ImageDataset(src, size=size, channels=channels, transform=transform, skip_bad=skip_bad, description=desc)
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
