"""Typed configuration: dataclasses loaded from YAML/dicts with ``key=value`` overrides.

An unknown key is an error that lists the valid keys; values are coerced to the field's
type (``"1e-4"`` -> float, ``"1,2,4"`` -> tuple of ints) so command-line overrides work.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from latentmed.errors import LatentmedError
from latentmed.io import write_text

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any] | None, *, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclass fields take nested dicts."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise LatentmedError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))} for {cls.__name__}. "
            f"Valid keys: {', '.join(sorted(fields))}."
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, LatentmedError):
            raise
        raise LatentmedError(f"{where}: {exc}") from exc


def to_dict(obj: Any) -> dict[str, Any]:
    """Dataclass -> plain dict (tuples become lists), suitable for JSON/YAML."""
    return dataclasses.asdict(obj)


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``; a damaged file (bad YAML, not UTF-8) is a one-line error naming it."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise LatentmedError(f"{path}: not valid YAML, the file is damaged ({type(exc).__name__}: {detail}); restore "
                             "it from a backup or write it again (a run's config.yaml: the --config and options it "
                             "was trained with).") from exc


def load_config(cls: type[T], path: str | os.PathLike | None = None, overrides: list[str] | dict | None = None,
                base: dict[str, Any] | None = None) -> T:
    """Load ``cls`` from ``base``, then a YAML file, then ``overrides`` (``"a.b=1"`` strings or a dict)."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise LatentmedError(f"{path}: config file not found.")
        loaded = read_yaml(path) or {}
        if not isinstance(loaded, dict):
            raise LatentmedError(f"{path}: expected a mapping of keys to values, got {type(loaded).__name__}.")
        _deep_update(data, loaded)
    if overrides:
        _deep_update(data, parse_overrides(overrides) if not isinstance(overrides, dict) else overrides)
    return from_dict(cls, data, where=str(path) if path else "config")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.lr=1e-4", "model.ch=32"]`` -> nested dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise LatentmedError(f"override {item!r}: expected KEY=VALUE, e.g. train.lr=1e-4.")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        # YAML 1.1 reads "30:40" as the base-60 number 1840: keep such values (slice ranges) as text
        text = raw.strip()
        node[parts[-1]] = "" if not text else text if _SEXAGESIMAL.match(text) else yaml.safe_load(raw)
    return out


_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$")


def _deep_update(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_update(dst[k], v)
        else:
            dst[k] = v


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        last: Exception | None = None
        for a in non_none:
            try:
                return _coerce(a, value, where)
            except LatentmedError as exc:
                last = exc
        raise last or LatentmedError(f"{where}: cannot read {value!r}.")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise LatentmedError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}.")
        return from_dict(tp, value, where=where)
    if origin is tuple or tp is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        if args and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if args:
            if len(args) != len(value):
                raise LatentmedError(f"{where}: expected {len(args)} values, got {list(value)!r}.")
            return tuple(_coerce(a, v, where) for a, v in zip(args, value))
        return tuple(value)
    if origin is list or tp is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        return [_coerce(args[0], v, where) if args else v for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise LatentmedError(f"{where}: expected a mapping, got {value!r}.")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise LatentmedError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}.")
        return value
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return value.lower() in {"true", "1", "yes"}
        raise LatentmedError(f"{where}: expected true/false, got {value!r}.")
    if tp in (int, float, str):
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise LatentmedError(f"{where}: expected an integer, got {value!r}.")
        try:
            return tp(value)
        except (TypeError, ValueError) as exc:
            raise LatentmedError(f"{where}: expected {tp.__name__}, got {value!r}.") from exc
    if tp is Path:
        return Path(value)
    return value


# ---- run folders -----------------------------------------------------------------------------------------------
RUN_CONFIG_NAME = "config.yaml"


def plain(obj: Any) -> Any:
    """A dataclass / dict / tuple tree as plain dicts and lists (what ``yaml.safe_dump`` writes)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_run_config(cfg: Any, run_dir: str | os.PathLike) -> Path:
    """Write a run's config (a dataclass with ``model``, ``objective``, ``train``, ``data`` sections)
    as ``run_dir/config.yaml``, atomically; the one file every run folder (DAE, shape, LDM) carries."""
    path = Path(run_dir) / RUN_CONFIG_NAME
    write_text(path, yaml.safe_dump(plain(cfg), sort_keys=False))
    return path


def load_run_config(cls: type[T], run_dir: str | os.PathLike, *, how_to_make: str = "") -> T:
    """Read ``run_dir/config.yaml`` into ``cls``; a folder without one gets a one-line error
    naming ``how_to_make`` (e.g. "Train one with `latentmed dae train`")."""
    path = Path(run_dir) / RUN_CONFIG_NAME
    if not path.is_file():
        raise LatentmedError(f"{run_dir}: not a run folder (no {RUN_CONFIG_NAME}). {how_to_make}".strip())
    return load_config(cls, path)
