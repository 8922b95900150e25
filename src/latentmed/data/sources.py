"""Sources: where the items of an :class:`~latentmed.data.ImageDataset` come from.

A source lists item ``ids`` (the one id rule: :mod:`latentmed.data.formats`) and reads item ``i``
as float32 ``[C, H, W]`` in [0, 1] at its native size (the value-range rule:
:func:`latentmed.data.transforms.to_unit_range`). ``shapes`` gives ``(C, H, W)`` per item from the
headers where they are known before decoding (``[]`` otherwise); ``labels`` is a DataFrame the
source carries itself (MedMNIST labels, a manifest CSV, shard rows) or ``None``.

- :class:`FolderSource`: image files (PNG/JPEG/TIFF/BMP), listed from a folder or a manifest;
- :class:`ArraySource`: an in-memory array or a ``.npy``/``.npz`` file (MedMNIST layout);
- :class:`VolumeSource`: slices of NIfTI volumes / DICOM series;
- :class:`ShardSource`: tar shards (WebDataset layout, :mod:`latentmed.data.shards`).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np

from latentmed.data import slicing as S
from latentmed.data import transforms as T
from latentmed.data.formats import (ARRAY_SUFFIXES, IMAGE_SUFFIXES, SIDE_SUFFIXES, file_stem, image_header,
                                    is_dicom, is_image_file, is_nifti, read_image, relative_id)
from latentmed.data.notices import BAD_HINT, notify, one_line, reading
from latentmed.data.volumes import Volume
from latentmed.errors import LatentmedError

MANIFEST = "labels.csv"  # a folder's manifest: an 'image' column of paths relative to the folder (+ 'id')


class FolderSource:
    """Image files; ids given (a manifest) or the files' paths relative to ``root`` without suffix."""

    labels = None

    def __init__(self, root: Path, files: list[Path], value_range, eight_bit: bool = False, shapes=None,
                 ids: list[str] | None = None):
        self.root, self.files, self.value_range, self.eight_bit = root, files, value_range, eight_bit
        if ids is None:
            ids = [relative_id(f, root) for f in files] if root.is_dir() else [file_stem(files[0].name)]
        self.ids = ids
        self.shapes = shapes or []  # (C, H, W) per file from its header

    def where(self, i: int) -> str:
        return str(self.files[i])

    name_of = where

    def read(self, i: int) -> np.ndarray:
        arr = T.to_unit_range(read_image(self.files[i]), self.value_range)
        return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)


def _chw(arr: np.ndarray, where: str) -> np.ndarray:
    """``[H, W]`` -> ``[1, H, W]``; ``[H, W, C]`` (C <= 4) -> ``[C, H, W]``; ``[C, H, W]`` kept."""
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3 and arr.shape[-1] in (1, 2, 3, 4) and arr.shape[0] not in (1, 2, 3, 4):
        return np.moveaxis(arr, -1, 0)
    if arr.ndim == 3:
        return arr
    raise LatentmedError(f"{where}: expected a 2D image or [H, W, C]/[C, H, W]; got shape {arr.shape}.")


class ArraySource:
    """Images ``[N, H, W(, C)]`` / ``[N, C, H, W]`` in an array (in memory or memory-mapped)."""

    def __init__(self, array, ids: list[str], value_range, where: str, labels=None):
        self.array, self.ids, self.value_range, self.where_ = array, ids, value_range, where
        self.eight_bit = array.dtype == np.uint8 and value_range is None
        self.labels = labels

    def where(self, i: int) -> str:
        return f"{self.where_}[{i}]"

    def read(self, i: int) -> np.ndarray:
        return _chw(T.to_unit_range(np.asarray(self.array[i]), self.value_range), self.where(i))

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


class VolumeSource:
    """Slices of volumes: every slice along ``axis``, given indices, or one per centroid.

    A volume with one slice (a DICOM image, a 2D NIfTI) is one 2D image whatever ``axis``
    (see :func:`latentmed.data.slicing.slicing_how`). With ``skip_bad`` each volume is read once
    when opened and unreadable ones are left out (``skipped``).
    """

    eight_bit = False
    labels = None

    def __init__(self, vols: list[Volume], axis, slices, centroids, window, crop, value_range,
                 skip_bad: bool = False):
        self.axis, self.window = axis, S.resolve_window(window)
        self.crop, self.value_range = crop, value_range
        slices = S.parse_slices(slices)
        self.items: list[tuple[int, int, tuple[float, float] | None]] = []  # (volume, k, in-plane centre)
        self.ids: list[str] = []
        self.shapes: list[tuple[int, int, int]] = []  # (C, H, W) per item, before resize
        self.vols: list[Volume] = []
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
                self.skipped.append(one_line(exc, 200))

    def _add(self, vol: Volume, slices, centroids) -> None:
        vi = len(self.vols)
        with reading(vol.path, "volume header"):
            if vol.kind == "dicom":  # a DICOM header means reading the series: keep it for the first read
                data, affine = vol.load()
                raw_shape, self._raw = data.shape, (vi, data)
            else:
                raw_shape, affine = vol.header()
            shape, point_map, how = S.slicing_plan(raw_shape, affine, self.axis, vol.kind, vol.path)
        self.vols.append(vol)
        self._how.append(how)
        single = S.single_slice_axis(raw_shape) is not None
        self.is_single.append(single)
        chw = (int(raw_shape[3]) if len(raw_shape) > 3 else 1, shape[1], shape[2])
        n = shape[0]
        if centroids is not None:
            pts = S.centroids_to_voxels(S.load_centroids(centroids), affine, raw_shape)
            for name, xyz in pts:
                kij = point_map(xyz)
                if not all(-0.5 <= kij[a] <= shape[a] - 0.5 for a in range(3)):
                    raise LatentmedError(f"centroid {name} at voxel {np.round(xyz, 1).tolist()} is outside "
                                         f"{vol.path} with shape {list(raw_shape)}; check the "
                                         "centroid file belongs to this volume and its 'direction'.")
                self.items.append((vi, int(round(kij[0])), (float(kij[1]), float(kij[2]))))
                self.ids.append(f"{vol.name}_{name}")
                self.shapes.append(chw if self.crop is None else (chw[0], *T.as_hw(self.crop)))
            return
        for k in (range(n) if slices is None else slices):
            k = int(k)
            if not 0 <= k < n:
                raise LatentmedError(f"slice {k} is out of range for axis {self.axis!r} of {vol.path} "
                                     f"({n} slice{'s' if n > 1 else ''}): use 0..{n - 1}.")
            self.items.append((vi, k, None))
            self.ids.append(vol.name if single else f"{vol.name}_{k:04d}")
            self.shapes.append(chw if self.crop is None else (chw[0], *T.as_hw(self.crop)))

    def __getstate__(self):  # do not ship a loaded volume (or a console callback) to DataLoader workers
        return {**self.__dict__, "_loaded": None, "_raw": None, "report": None}

    def _oriented(self, vi: int) -> np.ndarray:
        if self._loaded is not None and self._loaded[0] == vi:
            return self._loaded[1]
        vol = self.vols[vi]
        with reading(vol.path, "volume"):
            if self._raw is not None and self._raw[0] == vi:
                data, self._raw = self._raw[1], None
            else:
                data, _ = vol.load()
            if vol.replaced and not self._nan_said:  # said once per data set
                self._nan_said = True
                notify(self.report, f"replaced {vol.replaced} NaN/inf voxel(s) of {vol.path} by {vol.nan_to!r} "
                                    "(further replacements in these data are not announced)")
            oriented = S.orient_for_slicing(data, self._how[vi])
            if isinstance(self.value_range, str):  # per image: scaled slice by slice in read()
                self._range[vi] = (float(np.min(oriented)), float(np.max(oriented)))
            elif self.value_range is not None:
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
        per_image = isinstance(self.value_range, str)
        out = T.to_unit_range(plane, self.value_range if per_image else self._range[vi])
        return out[None] if out.ndim == 2 else out


class ShardSource:
    """Samples of tar shards (``<key>.<image suffix>`` + ``<key>.json``), read by tar offsets; id = key."""

    eight_bit = False
    shapes: list = []

    def __init__(self, shards: list[Path], value_range):
        self.shards, self.value_range = shards, value_range
        self.members: list[dict] = []  # {"shard", "image": (offset, size), "json": (offset, size)}
        seen: dict[str, dict] = {}
        for shard in shards:
            try:
                with tarfile.open(shard) as tar:
                    members = tar.getmembers()
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise LatentmedError(f"{shard}: not a readable tar shard ({type(exc).__name__}: {one_line(exc, 160)}); "
                                     "expected an image folder or *.tar shards. Rewrite it with "
                                     "`latentmed data shard`.") from exc
            for m in members:
                if not m.isfile() or "." not in m.name:
                    continue
                key, ext = m.name.rsplit(".", 1)
                item = seen.get(f"{shard.name}/{key}")
                if item is None:
                    item = seen[f"{shard.name}/{key}"] = {"id": key, "shard": shard}
                    self.members.append(item)
                if ext.lower() == "json":
                    item["json"] = (m.offset_data, m.size)
                elif "." + ext.lower() in IMAGE_SUFFIXES:
                    item["image"] = (m.offset_data, m.size)
        for it in self.members:
            if "image" not in it:
                raise LatentmedError(f"{it['shard']}: sample {it['id']!r} has no image member.")
        self.ids = [it["id"] for it in self.members]
        self._labels = None

    def _bytes(self, shard: Path, span: tuple[int, int]) -> bytes:
        with open(shard, "rb") as fh:
            fh.seek(span[0])
            return fh.read(span[1])

    def where(self, i: int) -> str:
        return f"{self.members[i]['shard']} ({self.ids[i]})"

    def name_of(self, i: int) -> str:
        return str(self.members[i]["shard"])

    def read(self, i: int) -> np.ndarray:
        it = self.members[i]
        arr = T.to_unit_range(read_image(self._bytes(it["shard"], it["image"]), self.where(i)), self.value_range)
        return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)

    def row(self, i: int) -> dict:
        """The JSON row stored with sample ``i`` (``{"id": ...}`` when there is none)."""
        it = self.members[i]
        return json.loads(self._bytes(it["shard"], it["json"])) if "json" in it else {"id": it["id"]}

    @property
    def labels(self):
        """The samples' JSON rows as a DataFrame indexed by id (read on first use)."""
        if self._labels is None and any("json" in it for it in self.members):
            import pandas as pd

            rows = [{k: v for k, v in self.row(i).items() if k != "id"} for i in range(len(self.ids))]
            df = pd.DataFrame(rows, index=pd.Index(self.ids, name="id"))
            for c in df.columns:
                num = pd.to_numeric(df[c], errors="coerce")
                if num.notna().sum() == df[c].notna().sum():
                    df[c] = num.astype(float)
            self._labels = df
        return self._labels


# --------------------------------------------------------------------------------------------- listing

def list_folder(root: Path, report=None) -> tuple[list[Path], list[Path], list[Path], list[Path]]:
    """Image, array, NIfTI and DICOM files under ``root``; other files are announced as ignored."""
    images, arrays, niftis, dicoms, other = [], [], [], [], []
    for f in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        suf = f.suffix.lower()
        if is_image_file(f):
            images.append(f)
        elif suf in ARRAY_SUFFIXES:
            arrays.append(f)
        elif is_nifti(f):
            niftis.append(f)
        elif is_dicom(f):
            dicoms.append(f)
        elif suf not in SIDE_SUFFIXES + (".tar",):
            other.append(f)
    if other and (images or niftis or dicoms):
        notify(report, f"ignored {len(other)} file(s) in {root} that are not images, NIfTI or DICOM (no "
                       f"'DICM' marker), e.g. {', '.join(f.name for f in other[:3])}")
    return images, arrays, niftis, dicoms


def read_manifest(root: Path) -> tuple[list[Path], list[str], "object"] | None:
    """``(files, ids, labels)`` of a folder whose ``labels.csv`` has an ``image`` column, else ``None``.

    Paths in ``image`` are relative to the folder; ids come from the ``id`` column (else the path
    without suffix); rows keep the CSV's order. ``labels`` is the CSV indexed by id.
    """
    import pandas as pd

    from latentmed.data.labels import read_labels

    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        head = pd.read_csv(path, nrows=0).columns
    except Exception as exc:
        raise LatentmedError(f"{path}: cannot read CSV ({type(exc).__name__}: {one_line(exc, 160)}).") from exc
    if "image" not in head:
        return None
    if "id" not in head:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        df.insert(0, "id", [file_stem(p) for p in df["image"]])
        labels = read_labels(df)
    else:
        labels = read_labels(path)
    empty = [str(k) for k, p in labels["image"].items() if not isinstance(p, str) or not p.strip()]
    if empty:
        raise LatentmedError(f"{path}: {len(empty)} row(s) without a path in the 'image' column, e.g. ids "
                             f"{empty[:3]}; give each row its image (relative to {root}).")
    files = [root / p for p in labels["image"]]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise LatentmedError(f"{path}: {len(missing)} image(s) listed in its 'image' column not found, e.g. "
                             f"{missing[:3]}; paths are relative to {root}.")
    return files, [str(k) for k in labels.index], labels


def scan_images(files: list[Path], skip_bad: bool, need_sizes: bool, report=None
                ) -> tuple[list[Path], bool, list[tuple[int, int, int]]]:
    """Open each image's header (and verify it when skipping bad files); check sizes agree.

    Returns the readable files, whether all of them are 8-bit, and their (channels, H, W).
    """
    good, bad, sizes, eight_bit, shapes = [], [], {}, True, []
    for f in files:
        try:
            chw, eight = image_header(f, verify=skip_bad)
        except Exception as exc:
            if not skip_bad:
                raise LatentmedError(f"{f}: cannot read image ({type(exc).__name__}: {exc}); {BAD_HINT}.") from exc
            bad.append(f"{f.name} ({type(exc).__name__})")
            continue
        eight_bit = eight_bit and eight
        good.append(f)
        shapes.append(chw)
        sizes.setdefault(chw[1:], f)
    if bad:
        notify(report, f"skipped {len(bad)} unreadable file(s): {', '.join(bad[:10])}"
               + (" ..." if len(bad) > 10 else ""))
    if need_sizes and len(sizes) > 1:
        shown = ", ".join(f"{h}x{w} (e.g. {p.name})" for (h, w), p in list(sizes.items())[:4])
        raise LatentmedError(f"images have different sizes: {shown}; pass size=N (CLI: --size N) to resize and "
                             "centre-crop them all to NxN.")
    return good, eight_bit, shapes


def open_npz(path: Path, split: str | None, value_range) -> ArraySource:
    """A ``.npz``: the MedMNIST layout (``<split>_images``/``<split>_labels``) or one array named ``images``."""
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
        ids = [f"{split}_{i:05d}" for i in range(len(images))]
        labels = None
        if f"{split}_labels" in keys:
            import pandas as pd

            lab = np.asarray(z[f"{split}_labels"]).reshape(len(ids), -1)
            cols = ["label"] if lab.shape[1] == 1 else [f"label_{j}" for j in range(lab.shape[1])]
            labels = pd.DataFrame(lab.astype(float), index=pd.Index(ids, name="id"), columns=cols)
        return ArraySource(images, ids, value_range, f"{path}:{split}_images", labels)
    key = "images" if "images" in keys else (keys[0] if len(keys) == 1 else None)
    if key is None:
        raise LatentmedError(f"{path}: cannot tell which array holds the images (keys {keys}); name it 'images' "
                             "or use the MedMNIST layout ('train_images', ...).")
    arr = z[key]
    return ArraySource(arr, [f"{path.stem}_{i:05d}" for i in range(len(arr))], value_range, f"{path}:{key}")


def open_npy(path: Path, value_range) -> ArraySource:
    """A ``.npy`` of images ``[N, H, W(, C)]``, memory-mapped."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise LatentmedError(f"{path}: cannot read .npy ({exc}).") from exc
    if arr.ndim not in (3, 4):
        raise LatentmedError(f"{path}: array of shape {arr.shape}; expected [N, H, W] or [N, H, W, C].")
    return ArraySource(arr, [f"{path.stem}_{i:05d}" for i in range(len(arr))], value_range, str(path))


__all__ = ["FolderSource", "ArraySource", "VolumeSource", "ShardSource", "list_folder", "read_manifest",
           "scan_images", "open_npz", "open_npy", "MANIFEST"]
