"""``open_images``: one entry point for 2D images from folders, manifests, arrays, NIfTI, DICOM and tar shards.

Items are dicts ``{"image": FloatTensor[C, H, W] in [-1, 1], "id": str}`` plus ``"labels"``
(``{column: float tensor}``, NaN when missing) when labels are attached, and any per-item arrays
attached with :meth:`ImageDataset.attach_arrays` (e.g. cached conditioning tokens). Reading is
lazy: a folder is listed (image headers only) when opened and each image is decoded on access; an
optional cache (a ``.npy`` memmap plus a JSON sidecar) holds the preprocessed images. Formats:
:mod:`~latentmed.data.formats`; where items come from: :mod:`~latentmed.data.sources`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from latentmed.data import sources as SRC
from latentmed.data import transforms as T
from latentmed.data.formats import IMAGE_SUFFIXES, file_stem, is_dicom, is_nifti
from latentmed.data.notices import BAD_HINT, notify, one_line
from latentmed.data.volumes import Volume, dicom_volumes, parse_nan_to
from latentmed.errors import LatentmedError


# --------------------------------------------------------------------------------------------- dataset

class ImageDataset(Dataset):
    """Map-style dataset of 2D images in [-1, 1]; see :func:`open_images`."""

    def __init__(self, source, *, size=None, channels: int = 1, transform: Callable | None = None,
                 skip_bad: bool = False, description: str = "", report: Callable[[str], None] | None = None):
        if channels not in (1, 3):
            raise LatentmedError(f"channels must be 1 (grayscale) or 3 (RGB); got {channels}.")
        self._source = source
        self._index = list(range(len(source.ids)))
        self.size = T.as_hw(size) if size is not None else None
        self.channels = channels
        self.transform = transform
        self.skip_bad = skip_bad
        self.description = description
        self.report = report  # where notices go (None: DataNotice warnings)
        self.labels = None  # pandas DataFrame aligned to ids, when attached
        self.arrays: dict[str, Any] = {}  # per-item arrays indexed by source position (attach_arrays)
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
            raise LatentmedError(f"{where}: {one_line(exc)}") from exc
        except Exception as exc:  # anything else a damaged file provokes still names the file, on one line
            raise LatentmedError(f"{where}: cannot read image ({type(exc).__name__}: {one_line(exc, 200)}); "
                                 f"{BAD_HINT}.") from exc
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
                notify(self.report, f"skipping unreadable item: {exc}")
                i, tried = (i + 1) % len(self), tried + 1
        if self.transform is not None:
            x = self.transform(x)
        item = {"image": x, "id": self.ids[i]}
        for name, values in self.arrays.items():
            item[name] = values[self._index[i]]
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
        if isinstance(src, SRC.VolumeSource):
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

    def attach_arrays(self, **arrays) -> "ImageDataset":
        """Attach per-item arrays (``name=[N, ...]`` in :attr:`ids` order); items then carry ``item[name]``.

        E.g. cached conditioning tokens: ``ds.attach_arrays(tokens=tokens)``.
        """
        for name, values in arrays.items():
            if name in ("image", "id", "labels"):
                raise LatentmedError(f"cannot attach an array named {name!r}: items already have that key.")
            if len(values) != len(self):
                raise LatentmedError(f"{name}: {len(values)} rows for a data set of {len(self)} images; "
                                     f"they must match the images one to one (recompute them for these data).")
            full = [None] * len(self._source.ids)
            for n, j in enumerate(self._index):
                full[j] = values[n]
            self.arrays[name] = full
        return self

    def stack(self, indices: Sequence[int] | None = None) -> torch.Tensor:
        """All (or the given) images as one ``[N, C, H, W]`` tensor, before ``transform`` (no augmentation)."""
        idx = range(len(self)) if indices is None else [int(i) for i in indices]
        if self._native_hw is None and self.size is None and self._cache is None and len(self):
            self._native_size()
        images = [self._read_raw(i % len(self)) for i in idx]
        return torch.stack(images) if images else torch.empty(0)

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

def _open_source(path: Path, *, size, split, value_range, nan_to, skip_bad, report, vol_kwargs, allow_gaps=False):
    """The source for ``path`` and a description (messages name it; it also keys the cache)."""
    desc = str(path)
    if path.is_dir():
        manifest = SRC.read_manifest(path)
        if manifest is not None:
            files, ids, labels = manifest
            files_ok, eight_bit, shapes = SRC.scan_images(files, False, need_sizes=False, report=report)
            src = SRC.FolderSource(path, files_ok, value_range, eight_bit and value_range is None, shapes, ids=ids)
            src.labels = labels
            return src, desc
        shards = sorted(path.glob("*.tar"))
        images, arrays, niftis, dicoms = SRC.list_folder(path, report)
        if shards and not (images or niftis or dicoms):
            return SRC.ShardSource(shards, value_range), desc
        kinds = {k: v for k, v in dict(images=images, nifti=niftis, dicom=dicoms).items() if v}
        if len(kinds) > 1:
            raise LatentmedError(f"{path} mixes {' and '.join(f'{len(v)} {k}' for k, v in kinds.items())} files; "
                                 "put each kind in its own folder.")
        if niftis:
            vols = [Volume.nifti(f, file_stem(f.relative_to(path).as_posix()), nan_to) for f in niftis]
            return SRC.VolumeSource(vols, **vol_kwargs), desc
        if dicoms:
            return SRC.VolumeSource(dicom_volumes(dicoms, skip_bad, report, nan_to, allow_gaps), **vol_kwargs), desc
        if images:
            files, eight_bit, shapes = SRC.scan_images(images, skip_bad, need_sizes=size is None, report=report)
            if not files:
                raise LatentmedError(f"{path}: none of the {len(images)} image files could be read.")
            return SRC.FolderSource(path, files, value_range, eight_bit and value_range is None, shapes), desc
        hint = f" (found {len(arrays)} .npy/.npz file(s): pass one of them)" if arrays else ""
        raise LatentmedError(f"{path}: no images found (looked for {', '.join(IMAGE_SUFFIXES)}, NIfTI, DICOM "
                             f"files and *.tar shards){hint}.")
    suf = path.suffix.lower()
    if suf == ".npy":
        return SRC.open_npy(path, value_range), desc
    if suf == ".npz":
        return SRC.open_npz(path, split, value_range), f"{path}:{split or 'default'}"
    if suf == ".tar":
        return SRC.ShardSource([path], value_range), desc
    if is_nifti(path):
        return SRC.VolumeSource([Volume.nifti(path, nan_to=nan_to)], **vol_kwargs), desc
    if is_dicom(path):
        return SRC.VolumeSource(dicom_volumes([path], nan_to=nan_to), **vol_kwargs), desc
    if suf in IMAGE_SUFFIXES:
        files, eight_bit, shapes = SRC.scan_images([path], False, False)
        return SRC.FolderSource(path, files, value_range, eight_bit and value_range is None, shapes), desc
    raise LatentmedError(f"{path}: unsupported file type {suf!r}; expected an image folder, .npy/.npz, "
                         ".nii/.nii.gz, .dcm or .tar shards.")


def open_images(source, *, size=None, channels: int = 1, axis="sagittal", slices=None, centroids=None,
                window=None, crop=None, cache=None, skip_bad: bool = False, transform: Callable | None = None,
                split: str | None = None, labels=None, value_range=None, nan_to=None, allow_gaps: bool = False,
                report: Callable[[str], None] | None = None) -> ImageDataset:
    """Open 2D images from a folder, a manifest, an array file, NIfTI, DICOM or tar shards as an :class:`ImageDataset`.

    Args:
        source: a folder of PNG/JPEG/TIFF/BMP images (searched recursively; id = relative path
            without suffix, ``/``-separated); a folder whose ``labels.csv`` has an ``image`` column
            (a manifest: those files, ids from its ``id`` column, its rows attached as labels, as the
            phantoms write); a folder of ``*.tar`` shards or one shard (:func:`latentmed.data.write_shards`;
            id = sample key, JSON rows attached as labels); a ``.npy``/``.npz`` file (MedMNIST
            layout ``train_images``... with ``split``); an array ``[N, H, W(, C)]``; a NIfTI file,
            a DICOM file, or a folder of NIfTI volumes / DICOM series.
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
        allow_gaps: DICOM series: read a series with a missing slice position as is (announced);
            by default such a gap is an error naming the neighbouring files.
        report: called with each notice (skipped files, resizes, channel conversions, volumes cut
            into slices), once per kind; default: :class:`~latentmed.data.DataNotice` warnings.
        transform: callable on the ``[C, H, W]`` tensor in [-1, 1] (e.g. augmentation), applied on access.
        labels: a labels CSV (``id`` column) or DataFrame to attach (instead of the source's own).
        value_range: raw intensity range mapped to [-1, 1]: ``None`` (from the dtype), ``(low, high)``,
            or ``"image"`` (per-image min-max of all but 8-bit images, as the latent diffusion
            readers do); see :func:`latentmed.data.transforms.to_unit_range`.
    """
    if isinstance(source, np.ndarray) or isinstance(source, torch.Tensor):
        arr = np.asarray(source)
        if arr.ndim not in (3, 4) or len(arr) == 0:
            raise LatentmedError(f"an image array must be [N, H, W] or [N, H, W, C] / [N, C, H, W] with N > 0; "
                                 f"got shape {arr.shape}.")
        src, desc = SRC.ArraySource(arr, [f"{i:05d}" for i in range(len(arr))], value_range, "array"), "array"
    else:
        path = Path(source)
        if not path.exists():
            raise LatentmedError(f"{path}: no such file or folder (expected an image folder, .npy/.npz, "
                                 "NIfTI, DICOM or .tar shards).")
        nan_to = parse_nan_to(nan_to)
        vol_kwargs = dict(axis=axis, slices=slices, centroids=centroids, window=window, crop=crop,
                          value_range=value_range, skip_bad=skip_bad and path.is_dir())
        src, desc = _open_source(path, size=size, split=split, value_range=value_range, nan_to=nan_to,
                                 skip_bad=skip_bad, report=report, vol_kwargs=vol_kwargs, allow_gaps=allow_gaps)
        if isinstance(src, SRC.VolumeSource):
            src.report = report
            desc += (f" axis={axis} window={window} crop={crop} centroids={centroids is not None} slices={slices}"
                     + (f" nan_to={nan_to}" if nan_to is not None else ""))
            if src.skipped:
                notify(report, f"skipped {len(src.skipped)} unreadable volume(s): " + "; ".join(src.skipped[:3])
                       + (" ..." if len(src.skipped) > 3 else ""))
    if value_range is not None:
        desc += f" value_range={value_range}"
    where = desc.split(" axis=")[0].split(" value_range=")[0]  # messages name the file or folder
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
        notify(report, note)
    if labels is not None:
        ds.attach_labels(labels)
    elif src.labels is not None:
        ds.attach_labels(src.labels)
    if cache is not None:
        cache = Path(cache)
        if cache.exists():
            ds.use_cache(cache)
        else:
            ds.build_cache(cache)
    return ds


__all__ = ["ImageDataset", "open_images"]
