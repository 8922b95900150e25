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
from typing import Any, ClassVar, TypeVar

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


def load_config(cls: type[T], path: str | os.PathLike | None = None, overrides: list[str] | dict | None = None) -> T:
    """Load ``cls`` from its defaults, then a YAML file, then ``overrides`` (``"a.b=1"`` strings or a dict);
    a recipe that these name (``cls.recipe_layer``) fills what they leave unset."""
    data: dict[str, Any] = {}
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
    recipe = getattr(cls, "recipe_layer", None)
    if recipe is not None:  # a named recipe's values sit under everything the user gave, above the defaults
        layered = recipe(data)
        _deep_update(layered, data)
        data = layered
    return from_dict(cls, data, where=str(path) if path else "config")


def merge_config(cls: type[T], path: str | os.PathLike | None = None, sets: list[str] | None = None,
                 options: dict[str, Any] | None = None) -> T:
    """The one merge rule of every command: explicit CLI ``options`` > ``sets`` > the YAML at ``path`` > the
    recipe these name (``cls.recipe_layer``, e.g. ``objective.recipe=reference``) > defaults.

    ``options``: ``{"train.steps": 7, "data.path": "x"}``, only the options the user gave (``None``
    values count as not given); ``sets``: the ``--set KEY=VALUE`` strings. With a YAML holding
    ``train.steps: 5``, ``--set train.steps=6`` and ``--steps 7``, the run gets 7.
    """
    data = parse_overrides(list(sets or []))
    for key, value in (options or {}).items():
        if value is not None:
            _deep_update(data, _nest(key, value))
    return load_config(cls, path, data)


def _nest(key: str, value: Any) -> dict[str, Any]:
    """``"a.b", 1`` -> ``{"a": {"b": 1}}``."""
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = str(value) if isinstance(value, Path) else value
    return out


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


class RunConfig:
    """Base of the run configs (DAE, VAE, LDM, shape): what a run folder's ``config.yaml`` holds.

    Subclasses are dataclasses whose fields are the YAML sections; ``how_to_make`` is the
    command that makes such a run (``"latentmed dae train"``). :func:`load_run_config` tells them
    apart by their sections.
    """

    how_to_make: ClassVar[str] = ""
    _kinds: ClassVar[dict[frozenset, type]] = {}

    @classmethod
    def recipe_layer(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The values of the recipe that the user's ``data`` (YAML, ``--set``, options merged) names, as a
        nested dict: :func:`load_config` puts them above the defaults and under every value the user gave.
        Empty by default; a run config with named recipes overrides it."""
        return {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        RunConfig._kinds.setdefault(frozenset(getattr(cls, "__annotations__", {})), cls)  # a subclass of a kind: same


def load_run_config(path: str | os.PathLike, kind: type[T] | None = None) -> T:
    """The run config saved in a run folder (``RUN/config.yaml``; ``path`` may also name the file).

    The class is the :class:`RunConfig` whose sections the file holds (DAE, VAE, LDM or shape);
    ``kind`` demands one: a run of another kind is an error that names both.
    """
    path = Path(path)
    file = path if path.suffix in (".yaml", ".yml") else path / RUN_CONFIG_NAME
    known = [k for k in dict.fromkeys(RunConfig._kinds.values()) if dataclasses.is_dataclass(k)]
    if not file.is_file():
        make = ", ".join(f"`{k.how_to_make}`" for k in ([kind] if kind else known) if k.how_to_make)
        hint = f" Make one with {make}." if make else ""
        raise LatentmedError(f"{path}: not a run folder (no {RUN_CONFIG_NAME}).{hint}")
    loaded = read_yaml(file) or {}
    sections = set(loaded) if isinstance(loaded, dict) else set()
    known = [k for k in dict.fromkeys(RunConfig._kinds.values()) if dataclasses.is_dataclass(k)]
    names = {k: {f.name for f in dataclasses.fields(k)} for k in (*known, *([kind] if kind else []))}
    fits = sorted((k for k in names if sections <= names[k]), key=lambda k: (names[k] != sections, len(names[k])))
    best = fits[0] if fits else None  # the exact match, else the one with the fewest unused sections
    if kind is not None and best is not None and best is not kind and names[best] == sections:
        raise LatentmedError(f"{path}: a {best.__name__} run, not a {kind.__name__} run; give a run folder of "
                             f"`{kind.how_to_make or kind.__name__}`.")
    cls = kind or best
    if cls is None:
        raise LatentmedError(f"{file}: sections {', '.join(sorted(sections)) or '(none)'} match no run kind "
                             f"({', '.join(k.__name__ for k in known)}).")
    return load_config(cls, file)
