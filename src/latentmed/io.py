"""Atomic file output and the ``config.json`` + ``*.safetensors`` model layout.

Outputs are written to a temporary name in the destination folder and renamed into
place (``os.replace`` is atomic on POSIX), so a failure never leaves a half file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from latentmed.errors import LatentmedError


def _umask() -> int:
    """The process's file-creation mask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    ``suffix`` defaults to the target's suffix so writers that infer the format from
    the extension (PIL, nibabel, numpy) keep working.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (dataclasses are converted)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON, with an error that names the file when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise LatentmedError(f"{path}: file not found (expected a JSON file).")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LatentmedError(f"{path}: not valid JSON, the file is damaged ({type(exc).__name__}: {exc}); restore it "
                             "from a backup, or write it again (re-train or re-save the model).") from exc


def write_image(array, path: str | os.PathLike) -> Path:
    """Atomically save ``[H, W]`` / ``[H, W, C]`` as an image, format from the suffix (PNG keeps uint16).

    The one image writer of the project (phantoms, masks, previews, grids).
    """
    import numpy as np
    from PIL import Image

    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype not in (np.uint8, np.uint16) or (array.dtype == np.uint16 and array.ndim != 2):
        raise LatentmedError(f"{path}: cannot save a {array.dtype} array of shape {array.shape} as an image; "
                             "expected uint8 [H, W(, C)] or uint16 [H, W].")
    fmt = Path(path).suffix.lstrip(".").upper().replace("JPG", "JPEG") or "PNG"
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format=fmt)
    return Path(path)


def write_csv(path: str | os.PathLike, rows: list[dict], fieldnames=None) -> Path:
    """Atomically write ``rows`` (dicts) as CSV; columns ``fieldnames`` or the first row's keys."""
    import csv
    import io

    if not rows:
        raise LatentmedError(f"{path}: no rows to write.")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames or rows[0]), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buf.getvalue())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def save_safetensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> Path:
    """Atomically save a flat ``{name: tensor}`` dict with safetensors (no pickle)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


DAMAGED_HINT = "restore it from a backup or re-train the model (a truncated copy or an interrupted download?)"


def load_safetensors(path: str | os.PathLike, device: str = "cpu", hint: str = DAMAGED_HINT) -> dict:
    """Load a safetensors file; a missing, truncated or corrupt file is a one-line error naming it and ``hint``."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise LatentmedError(f"{path}: weights file not found.")
    try:
        return load_file(str(path), device=device)
    except Exception as exc:  # SafetensorError (bad header, file not fully covered), OSError
        detail = " ".join(str(exc).split())[:200]
        raise LatentmedError(f"{path}: damaged weights file ({type(exc).__name__}: {detail}); {hint}.") from exc
