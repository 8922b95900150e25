"""Latents files (``.npz``) and grader folders (JSON + ``.npz``, no pickle).

Latents file, written by ``latentmed dae encode``:

- ``ids``      str array ``[N]`` (unique sample ids),
- ``z_sem``    float32 ``[N, d]`` (the DAE's semantic code),
- ``x_T``      optional float32 ``[N, C, H, W]`` (stochastic code from DDIM inversion),
- ``model_id`` 0-d str array (identity of the DAE weights that produced the latents).

Grader folder: ``grader.json`` (class, parameters, scalars) + ``arrays.npz`` (numeric arrays),
read back with ``allow_pickle=False``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from latentmed.errors import LatentmedError, expect
from latentmed.io import atomic_path, read_json, write_json

GRADER_JSON = "grader.json"
GRADER_ARRAYS = "arrays.npz"
FORMAT_VERSION = 1


@dataclasses.dataclass
class Latents:
    """Encoded data set: ``ids [N]``, ``z_sem [N, d]``, optional ``x_T [N, C, H, W]``, ``model_id``."""

    ids: np.ndarray
    z_sem: np.ndarray
    x_T: np.ndarray | None = None
    model_id: str = ""

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids).astype(str)
        self.z_sem = np.asarray(self.z_sem, dtype=np.float32)
        expect(self.z_sem.ndim == 2, f"z_sem must be 2D [N, d]; got shape {self.z_sem.shape}.")
        expect(self.ids.ndim == 1 and len(self.ids) == len(self.z_sem),
               f"ids must be 1D with one id per row of z_sem; got ids {self.ids.shape}, z_sem {self.z_sem.shape}.")
        expect(len(set(self.ids.tolist())) == len(self.ids), "ids must be unique; found duplicates.")
        if self.x_T is not None:
            self.x_T = np.asarray(self.x_T, dtype=np.float32)
            expect(len(self.x_T) == len(self.ids),
                   f"x_T must have one entry per id; got {len(self.x_T)} for {len(self.ids)} ids.")
        self.model_id = str(self.model_id)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return int(self.z_sem.shape[1])

    def select(self, ids) -> "Latents":
        """Rows for ``ids`` (in that order); unknown ids are an error naming a few of them."""
        index = {k: i for i, k in enumerate(self.ids.tolist())}
        ids = [str(i) for i in ids]
        missing = [i for i in ids if i not in index]
        expect(not missing, f"{len(missing)} id(s) not in the latents file, e.g. {missing[:5]}; "
                            f"available ids look like {self.ids[:3].tolist()}.")
        rows = np.array([index[i] for i in ids], dtype=int)
        return Latents(self.ids[rows], self.z_sem[rows], None if self.x_T is None else self.x_T[rows], self.model_id)


def save_latents(path: str | os.PathLike, ids, z_sem, x_T=None, model_id: str = "") -> Path:
    """Atomically write a latents ``.npz`` (see the module docstring for the keys)."""
    lat = Latents(ids, z_sem, None if x_T is None else np.asarray(x_T), model_id)
    arrays: dict[str, Any] = {"ids": lat.ids, "z_sem": lat.z_sem, "model_id": np.array(lat.model_id)}
    if lat.x_T is not None:
        arrays["x_T"] = lat.x_T
    path = Path(path)
    expect(path.suffix == ".npz", f"latents file must end in .npz; got {path}.")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return path


def load_latents(path: str | os.PathLike) -> Latents:
    """Read a latents ``.npz``; missing keys, bad shapes and NaN/inf values are clear errors."""
    path = Path(path)
    expect(path.is_file(), f"{path}: latents file not found (expected the .npz written by `latentmed dae encode`).")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (ValueError, OSError) as exc:
        raise LatentmedError(f"{path}: cannot read as a latents .npz ({exc}).") from exc
    missing = [k for k in ("ids", "z_sem") if k not in data]
    expect(not missing, f"{path}: missing key(s) {missing}; a latents file has ids, z_sem, optional x_T and model_id.")
    z = np.asarray(data["z_sem"])
    expect(z.ndim == 2, f"{path}: z_sem must be [N, d]; got shape {z.shape}.")
    bad = ~np.isfinite(z).all(axis=1)
    if bad.any():
        raise LatentmedError(f"{path}: z_sem has NaN/inf in {int(bad.sum())} row(s), e.g. ids "
                             f"{np.asarray(data['ids'])[bad][:5].astype(str).tolist()}; re-encode those images.")
    model_id = str(data["model_id"]) if "model_id" in data else ""
    return Latents(data["ids"], z, data.get("x_T"), model_id)


def save_grader(grader, directory: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Save a fitted :class:`HyperplaneGrader` or :class:`LinearProbe` to ``directory`` (JSON + npz).

    ``metadata`` (JSON-able; default ``grader.metadata_`` if set) is stored beside the fit, e.g. the
    label column and the training ids; :func:`load_grader` restores it as ``metadata_``.
    """
    from latentmed.latent.grader import HyperplaneGrader
    from latentmed.latent.probe import LinearProbe

    expect(isinstance(grader, (HyperplaneGrader, LinearProbe)),
           f"save_grader expects a HyperplaneGrader or LinearProbe; got {type(grader).__name__}.")
    state = grader._get_state()  # (json-able scalars, {name: ndarray})
    scalars, arrays = state
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / GRADER_ARRAYS) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})
    write_json(directory / GRADER_JSON, {"_class": type(grader).__name__, "_format": FORMAT_VERSION,
                                          "params": _jsonable(grader.get_params(deep=False)), "fitted": scalars,
                                          "metadata": metadata if metadata is not None else
                                          getattr(grader, "metadata_", {})})
    return directory


def load_grader(directory: str | os.PathLike):
    """Load a grader saved by :func:`save_grader`."""
    from latentmed.latent.grader import HyperplaneGrader
    from latentmed.latent.probe import LinearProbe

    directory = Path(directory)
    expect(directory.is_dir() and (directory / GRADER_JSON).is_file(),
           f"{directory}: not a grader folder (expected {GRADER_JSON} and {GRADER_ARRAYS}; "
           f"create one with `latentmed grade fit ... --out {directory}`).")
    meta = read_json(directory / GRADER_JSON)
    classes = {"HyperplaneGrader": HyperplaneGrader, "LinearProbe": LinearProbe}
    cls = classes.get(meta.get("_class"))
    expect(cls is not None, f"{directory}: unknown grader class {meta.get('_class')!r}; expected one of {list(classes)}.")
    with np.load(directory / GRADER_ARRAYS, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in meta["params"].items()}
    obj = cls(**params)
    obj._set_state(meta["fitted"], arrays)
    obj.metadata_ = meta.get("metadata", {}) or {}
    return obj


def _jsonable(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out
