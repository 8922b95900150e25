"""Tar shards (the WebDataset convention): ``shard-000000.tar`` holding ``<id>.<suffix>`` and ``<id>.json``.

:func:`write_shards` packs a folder (a manifest or plain image files) keeping each image's encoded
bytes and its labels row; :func:`latentmed.data.open_images` reads shards back with the same ids
(:class:`latentmed.data.sources.ShardSource`, random access by tar offsets, no extra dependency).
"""

from __future__ import annotations

import io
import json
import math
import os
import tarfile
from pathlib import Path
from typing import Callable

from latentmed.data import sources as SRC
from latentmed.errors import LatentmedError
from latentmed.io import atomic_path


def _folder_samples(src: Path, report=None) -> list[tuple[str, Path, dict]]:
    """``(id, file, labels row)`` of every image of a folder: its manifest's rows, else its image files."""
    manifest = SRC.read_manifest(src)
    if manifest is not None:
        files, ids, labels = manifest
        rows = labels.reset_index().to_dict(orient="records")
        return [(k, f, {c: (None if v != v else v) for c, v in r.items()}) for k, f, r in zip(ids, files, rows)]
    images = SRC.list_folder(src, report)[0]
    folder = SRC.FolderSource(src, images, None)
    return [(k, f, {"id": k}) for k, f in zip(folder.ids, images)]


def write_shards(src: str | os.PathLike, out_dir: str | os.PathLike, shard_size: int = 1000,
                 progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Pack the images of folder ``src`` into tar shards of ``shard_size`` samples; return their paths.

    Members keep the original encoded bytes (``<id>.png``) and the labels row (``<id>.json``), so
    the shards read back with the folder's ids, images and labels. ``progress(1, n_shards)`` is
    called after each shard. Each shard is written to a temporary name and renamed.
    """
    src = Path(src)
    if shard_size < 1:
        raise LatentmedError(f"shard_size must be >= 1, got {shard_size}.")
    if not src.is_dir():
        raise LatentmedError(f"{src}: not a folder; pass the image folder to pack into shards.")
    samples = _folder_samples(src)
    if not samples:
        raise LatentmedError(f"{src}: no images found (expected image files or a labels.csv with an 'image' "
                             "column); shards are packed from an image folder.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    n_shards = math.ceil(len(samples) / shard_size)
    for s in range(n_shards):
        path = out / f"shard-{s:06d}.tar"
        with atomic_path(path) as tmp:
            with tarfile.open(tmp, "w") as tar:
                for key, file, row in samples[s * shard_size:(s + 1) * shard_size]:
                    for name, data in ((f"{key}{file.suffix.lower()}", file.read_bytes()),
                                       (f"{key}.json", json.dumps(row).encode())):
                        info = tarfile.TarInfo(name)
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
        written.append(path)
        if progress is not None:
            progress(1, n_shards)
    return written


__all__ = ["write_shards"]
