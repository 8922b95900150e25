"""``save_pretrained`` / ``from_pretrained`` for modules built from one config dataclass.

Layout (diffusers-like): ``DIR/config.json`` holds ``{"_class": ..., "_version": ...,
**config}`` and ``DIR/model.safetensors`` the state dict. Nothing is pickled. Loading a
directory saved by another class, or weights whose shapes do not match the config, is a
clear :class:`LatentmedError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from latentmed import __version__
from latentmed.config import from_dict, to_dict
from latentmed.errors import LatentmedError
from latentmed.io import load_safetensors, read_json, save_safetensors, write_json

M = TypeVar("M", bound="PretrainedMixin")

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class PretrainedMixin:
    """Mixin for ``nn.Module`` subclasses whose ``__init__`` takes one ``config`` dataclass.

    Subclasses set ``config_class`` and store ``self.config``.
    """

    config_class: ClassVar[type]
    config: Any

    def save_pretrained(self, directory: str | os.PathLike, state_dict: dict[str, torch.Tensor] | None = None,
                        extra: dict[str, Any] | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` to ``directory`` (atomically, file by file).

        ``state_dict`` overrides the module's own weights (e.g. to save EMA weights).
        ``extra`` adds keys to ``config.json`` beside the config (e.g. data normalisation).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        sd = state_dict if state_dict is not None else self.state_dict()  # type: ignore[attr-defined]
        save_safetensors(directory / WEIGHTS_NAME, dict(sd))
        meta = {"_class": type(self).__name__, "_version": __version__, **to_dict(self.config)}
        if extra:
            meta["_extra"] = extra
        write_json(directory / CONFIG_NAME, meta)
        return directory

    @classmethod
    def read_config(cls, directory: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
        """Return ``(config, extra)`` stored in ``directory/config.json``, checking the class."""
        directory = Path(directory)
        if not directory.is_dir():
            raise LatentmedError(f"{directory}: not a directory. Expected a folder written by save_pretrained "
                                 f"with {CONFIG_NAME} and {WEIGHTS_NAME}.")
        meta = read_json(directory / CONFIG_NAME)
        saved_class = meta.pop("_class", None)
        if saved_class != cls.__name__:
            raise LatentmedError(f"{directory}: holds a {saved_class or 'unknown'} model, expected {cls.__name__}. "
                                 f"Point to a folder saved by {cls.__name__}.save_pretrained.")
        meta.pop("_version", None)
        extra = meta.pop("_extra", {}) or {}
        return from_dict(cls.config_class, cls.upgrade_config(meta), where=str(directory / CONFIG_NAME)), extra

    @classmethod
    def upgrade_config(cls, meta: dict[str, Any]) -> dict[str, Any]:
        """The saved config mapping in today's layout (a subclass maps older layouts; default: unchanged)."""
        return meta

    @classmethod
    def from_pretrained(cls: type[M], directory: str | os.PathLike, device: str | torch.device = "cpu") -> M:
        """Rebuild the module from ``directory`` and load its weights (no pickle)."""
        config, extra = cls.read_config(directory)
        model = cls(config)  # type: ignore[call-arg]
        model.pretrained_extra = extra  # type: ignore[attr-defined]
        load_state_checked(model, load_safetensors(Path(directory) / WEIGHTS_NAME), str(directory))  # type: ignore[arg-type]
        return model.to(device)  # type: ignore[attr-defined]


def load_state_checked(module: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict(strict=True)`` with an error that lists the mismatching keys/shapes."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shape:
        parts = []
        if shape:
            k = shape[0]
            parts.append(f"{len(shape)} tensor(s) of another shape (e.g. {k}: saved {tuple(state[k].shape)}, "
                         f"model {tuple(own[k].shape)})")
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise LatentmedError(f"{where}: weights do not fit {type(module).__name__}: {'; '.join(parts)}. "
                             "The checkpoint comes from another architecture or configuration.")
    module.load_state_dict(state, strict=True)
