"""Images for latent diffusion: folders or WebDataset-style tar shards, preprocessing, labels CSVs.

Preprocessing follows DiNO-Diffusion (Sec. 3): 16-bit images are rescaled to 8 bit (per-image
min-max), centre-cropped to 1:1, resized; training may add light augmentation (random
sharpening; affine with up to 5% shear, 5% translation and 90-140% scale).

A *folder* is either ``DIR/labels.csv`` with an ``image`` column (paths relative to DIR, as the
phantoms write) or any folder of ``.png/.jpg/.tif`` images (searched recursively).
*Shards* (:func:`write_shards`) are plain tar files ``shard-000000.tar`` holding ``<key>.png``
and ``<key>.json`` (the CSV row) per sample, the WebDataset convention; :class:`LDMImageDataset`
reads either, random access by tar offsets (no extra dependency).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tarfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from latentmed.errors import LatentmedError, expect
from latentmed.io import atomic_path

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


# ---- reading and preprocessing ---------------------------------------------------------------------------
def to_8bit(arr: np.ndarray) -> np.ndarray:
    """16-bit (or float) -> uint8 by per-image min-max rescaling; uint8 passes through."""
    if arr.dtype == np.uint8:
        return arr
    a = arr.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.round((a - lo) / (hi - lo) * 255).astype(np.uint8)


def decode_image(data: bytes | str | os.PathLike, channels: int = 1) -> np.ndarray:
    """Read an image file (path or bytes) to uint8 ``[H, W]`` (``channels=1``) or ``[H, W, 3]``."""
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        img.load()
    except (OSError, ValueError) as exc:
        where = "image bytes" if isinstance(data, bytes) else str(data)
        raise LatentmedError(f"{where}: cannot read as an image ({exc}).") from exc
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = to_8bit(np.asarray(img))
        return arr if channels == 1 else np.repeat(arr[..., None], 3, -1)
    return np.asarray(img.convert("L" if channels == 1 else "RGB"))


def center_crop_square(arr: np.ndarray) -> np.ndarray:
    """Centre crop ``[H, W, ...]`` to ``min(H, W)`` squared."""
    h, w = arr.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return arr[top:top + s, left:left + s]


def preprocess(arr: np.ndarray, size: int | None) -> torch.Tensor:
    """uint8 ``[H, W]``/``[H, W, C]`` -> float ``[C, size, size]`` in [-1, 1] (crop 1:1, antialiased resize)."""
    x = torch.from_numpy(np.array(arr, dtype=np.float32)) / 127.5 - 1
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    if size is not None:
        x = torch.from_numpy(np.ascontiguousarray(center_crop_square(x.permute(1, 2, 0).numpy()))).permute(2, 0, 1)
        if x.shape[-1] != size:
            x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)[0].clamp(-1, 1)
    return x.contiguous()


def augment(x: torch.Tensor, generator: torch.Generator | None = None, shear: float = 0.05,
            translate: float = 0.05, scale: tuple[float, float] = (0.9, 1.4), sharpen: float = 1.0) -> torch.Tensor:
    """Light augmentation of one image ``[C, H, W]`` in [-1, 1] (DiNO-Diffusion Sec. 3).

    Random sharpening (unsharp mask of strength U(0, ``sharpen``)) and a random affine
    transform with shear U(-s, s), translation U(-t, t) of the side, zoom U(scale).
    """
    u = lambda a, b: float(a + (b - a) * torch.rand((), generator=generator))  # noqa: E731
    c, h, w = x.shape
    blur = F.avg_pool2d(F.pad(x[None], (1, 1, 1, 1), mode="replicate"), 3, stride=1)[0]
    x = (x + u(0, sharpen) * (x - blur)).clamp(-1, 1)
    z = u(*scale)
    sh = u(-shear, shear)
    theta = torch.tensor([[1 / z, sh / z, u(-translate, translate) * 2],
                          [0.0, 1 / z, u(-translate, translate) * 2]], dtype=x.dtype)
    grid = F.affine_grid(theta[None], [1, c, h, w], align_corners=False)
    return F.grid_sample(x[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]


# ---- labels -------------------------------------------------------------------------------------------------
def read_labels_csv(path: str | os.PathLike, columns: Sequence[str] | None = None) -> list[dict[str, str]]:
    """Rows of a labels CSV; with ``columns``, checks they exist and hold 0/1 values."""
    path = Path(path)
    if not path.is_file():
        raise LatentmedError(f"{path}: labels CSV not found.")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    if columns:
        missing = [c for c in columns if c not in header]
        if missing:
            raise LatentmedError(f"{path}: no column(s) {', '.join(map(repr, missing))}; the CSV has "
                                 f"{', '.join(header)}. Pass --labels with columns of this file.")
        for r in rows:
            for c in columns:
                if r[c] not in ("0", "1", "0.0", "1.0"):
                    raise LatentmedError(f"{path}: column {c!r} must hold 0/1 labels, got {r[c]!r} "
                                         f"(row id {r.get('id', '?')}).")
    return rows


def label_matrix(rows: list[dict[str, str]], columns: Sequence[str]) -> np.ndarray:
    """``[N, L]`` int array of the 0/1 label ``columns``."""
    return np.array([[int(float(r[c])) for c in columns] for r in rows], dtype=np.int64).reshape(len(rows), len(columns))


def write_labels_csv(path: str | os.PathLike, rows: list[dict], fieldnames: Sequence[str] | None = None) -> Path:
    """Atomically write ``rows`` as CSV."""
    expect(len(rows) > 0, f"{path}: nothing to write.")
    buf = io.StringIO()
    fields = list(fieldnames or rows[0])
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
    return Path(path)


# ---- data sets ------------------------------------------------------------------------------------------------
def _folder_items(root: Path) -> list[dict]:
    csv_path = root / "labels.csv"
    if csv_path.is_file():
        rows = read_labels_csv(csv_path)
        expect(len(rows) == 0 or "image" in rows[0],
               f"{csv_path}: needs an 'image' column with image paths relative to {root}.")
        return [{"key": r.get("id") or Path(r["image"]).stem, "path": root / r["image"], "row": r} for r in rows]
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    return [{"key": str(p.relative_to(root).with_suffix("")).replace(os.sep, "_"), "path": p,
             "row": {"id": p.stem, "image": str(p.relative_to(root))}} for p in files]


def _shard_items(shards: list[Path]) -> list[dict]:
    items: dict[str, dict] = {}
    order = []
    for shard in shards:
        try:
            with tarfile.open(shard) as tar:
                members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            hint = (" NIfTI/DICOM volumes are read by the `dae` commands (open_images); for these commands save "
                    "the slices as PNG first." if shard.suffix.lower() != ".tar" else " Rewrite it with "
                    "`latentmed data shard`.")
            raise LatentmedError(f"{shard}: not a readable tar shard ({type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())[:160]}); expected an image folder or *.tar shards."
                                 + hint) from exc
        for m in members:
            if not m.isfile():
                continue
            key, ext = m.name.rsplit(".", 1) if "." in m.name else (m.name, "")
            key = f"{shard.name}/{key}"
            if key not in items:
                items[key] = {"key": key.split("/", 1)[1], "shard": shard}
                order.append(key)
            if ext.lower() == "json":
                items[key]["json"] = (m.offset_data, m.size)
            elif "." + ext.lower() in IMAGE_EXTS:
                items[key]["image"] = (m.offset_data, m.size)
    out = []
    for k in order:
        it = items[k]
        expect("image" in it, f"{it['shard']}: sample {it['key']!r} has no image member.")
        out.append(it)
    return out


class LDMImageDataset(torch.utils.data.Dataset):
    """Images from a folder or a folder of tar shards, as ``{"image": [C,S,S] in [-1,1], "index": i}``.

    ``size=None`` keeps the native size, which must then be the same for every image (checked on
    the first and, lazily, every image). ``tokens`` (``[N, T, D]``, e.g. an embedding cache) adds
    ``"tokens"`` to each item. ``augment=True`` applies :func:`augment` (seeded per item and call).
    """

    def __init__(self, root: str | os.PathLike, size: int | None = 64, channels: int = 1, augment: bool = False,
                 tokens: torch.Tensor | None = None):
        self.root = Path(root)
        if not self.root.exists():
            raise LatentmedError(f"{self.root}: data folder not found.")
        shards = sorted(self.root.glob("*.tar")) if self.root.is_dir() else [self.root]
        self.is_shards = bool(shards) and not (self.root / "labels.csv").is_file()
        self.items = _shard_items(shards) if self.is_shards else _folder_items(self.root)
        if not self.items:
            raise LatentmedError(f"{self.root}: no images found (expected labels.csv with an 'image' column, image "
                                 f"files {', '.join(IMAGE_EXTS)}, or *.tar shards from `latentmed data shard`).")
        self.size, self.channels, self.augment = size, channels, augment
        self._native: tuple[int, int] | None = None
        if size is None:
            self._native = tuple(self.raw(0).shape[:2])  # type: ignore[assignment]
        if tokens is not None:
            expect(len(tokens) == len(self.items), f"embedding cache has {len(tokens)} rows but the data set has "
                                                   f"{len(self.items)} images: recompute it with `latentmed ldm embed`.")
        self.tokens = tokens

    def __len__(self) -> int:
        return len(self.items)

    @property
    def keys(self) -> list[str]:
        return [it["key"] for it in self.items]

    def row(self, i: int) -> dict:
        """The labels row of item ``i`` (CSV row or shard JSON)."""
        it = self.items[i]
        if "row" in it:
            return it["row"]
        if "json" not in it:
            return {"id": it["key"]}
        off, n = it["json"]
        with open(it["shard"], "rb") as fh:
            fh.seek(off)
            return json.loads(fh.read(n))

    def raw(self, i: int) -> np.ndarray:
        it = self.items[i]
        if "shard" in it:
            off, n = it["image"]
            with open(it["shard"], "rb") as fh:
                fh.seek(off)
                data: bytes | Path = fh.read(n)
        else:
            data = it["path"]
            if not Path(data).is_file():
                raise LatentmedError(f"{data}: image listed in {self.root / 'labels.csv'} not found.")
        return decode_image(data, self.channels)

    def __getitem__(self, i: int) -> dict:
        arr = self.raw(i)
        if self.size is None and tuple(arr.shape[:2]) != self._native:
            raise LatentmedError(f"{self.root}: images of mixed sizes ({self.items[0]['key']}: {self._native}, "
                                 f"{self.items[i]['key']}: {tuple(arr.shape[:2])}). Pass a size (--size) to crop "
                                 "and resize them all.")
        x = preprocess(arr, self.size)
        if self.augment:
            g = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ())) + i)
            x = augment(x, g)
        item = {"image": x, "index": i}
        if self.tokens is not None:
            item["tokens"] = self.tokens[i]
        return item

    def stack(self, indices: Sequence[int] | None = None) -> torch.Tensor:
        """All (or the given) images as one ``[N, C, S, S]`` tensor, without augmentation."""
        aug, self.augment = self.augment, False
        try:
            idx = range(len(self)) if indices is None else indices
            return torch.stack([self[i]["image"] for i in idx]) if len(idx) else torch.empty(0)
        finally:
            self.augment = aug


def write_shards(src: str | os.PathLike, out_dir: str | os.PathLike, shard_size: int = 1000,
                 progress: bool = False) -> list[Path]:
    """Pack a folder (labels.csv or plain images) into tar shards of ``shard_size`` samples.

    Members keep the original encoded bytes (``<key>.png``) and the CSV row (``<key>.json``).
    """
    expect(shard_size >= 1, f"shard_size must be >= 1, got {shard_size}.")
    ds = LDMImageDataset(src, size=8)  # only the listing is used
    expect(not ds.is_shards, f"{src}: already shards; pass the image folder.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    n_shards = math.ceil(len(ds) / shard_size)
    it = range(n_shards)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="shards", unit="shard")
    for s in it:
        path = out / f"shard-{s:06d}.tar"
        with atomic_path(path) as tmp:
            with tarfile.open(tmp, "w") as tar:
                for i in range(s * shard_size, min(len(ds), (s + 1) * shard_size)):
                    item = ds.items[i]
                    key = item["key"].replace("/", "_").replace(".", "_")
                    for name, data in ((f"{key}{item['path'].suffix.lower()}", Path(item["path"]).read_bytes()),
                                       (f"{key}.json", json.dumps(item["row"]).encode())):
                        info = tarfile.TarInfo(name)
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
        written.append(path)
    return written
