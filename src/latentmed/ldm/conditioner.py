"""Frozen self-supervised ViT conditioners (DiNO-Diffusion, Sec. 2: the UNet cross-attends to DINO tokens).

Supported backbones (``transformers``, always loaded from a LOCAL directory, never downloaded):

- DINO v1 ViT-B/16 (``facebook/dino-vitb16``): ``ViTModel``; tokens ``[CLS, patches]``.
- DINOv2 ViT-B/14 with 4 registers (``facebook/dinov2-with-registers-base``):
  ``Dinov2WithRegistersModel``; tokens ``[CLS, 4 registers, patches]``.
- plain DINOv2 (``Dinov2Model``) also loads.

Token selection: ``global`` (default) keeps CLS (+ registers, + the ViT pooler output when
the checkpoint has trained pooler weights); ``all`` adds the patch tokens (the paper's
ablation: the UNet can then copy the image). Images in [-1, 1] (1 or 3 channels) are
mapped to 3 channels, resized to the ViT's input size and normalised with its mean/std.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from latentmed.errors import LatentmedError, expect
from latentmed.io import read_json, write_json

TOKEN_MODES = ("global", "all")
CONDITIONER_JSON = "conditioner.json"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_BACKBONES = {"vit": "ViTModel", "dinov2": "Dinov2Model", "dinov2_with_registers": "Dinov2WithRegistersModel"}
WEIGHTS_HELP = ("Download the weights once on a machine with internet, e.g. "
                "`huggingface-cli download facebook/dino-vitb16 --local-dir DIR` (DINO v1) or "
                "`huggingface-cli download facebook/dinov2-with-registers-base --local-dir DIR` (DINOv2 reg4), "
                "copy DIR here and pass it; latentmed never downloads weights.")


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def _backbone_class(model_type: str):
    import transformers

    if model_type not in _BACKBONES:
        raise LatentmedError(f"unsupported ViT model_type {model_type!r}; expected one of {', '.join(_BACKBONES)} "
                             "(DINO v1 ViT, DINOv2, DINOv2 with registers).")
    return getattr(transformers, _BACKBONES[model_type])


class DinoConditioner(nn.Module):
    """Frozen ViT -> conditioning tokens ``[B, N, D]`` for cross-attention.

    ``mean``/``std`` are the ViT's normalisation (ImageNet's by default, or the local
    ``preprocessor_config.json``); ``image_size`` is the ViT input side.
    """

    def __init__(self, backbone: nn.Module, tokens: str = "global", image_size: int | None = None,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, use_pooler: bool = False, source: str = "random"):
        super().__init__()
        expect(tokens in TOKEN_MODES, f"tokens must be one of {TOKEN_MODES}, got {tokens!r}.")
        self.backbone = backbone.eval().requires_grad_(False)
        cfg = backbone.config
        self.model_type = cfg.model_type
        self.tokens = tokens
        self.image_size = int(image_size or cfg.image_size)
        self.patch_size = int(cfg.patch_size)
        self.num_registers = int(getattr(cfg, "num_register_tokens", 0) or 0)
        self.use_pooler = bool(use_pooler and getattr(backbone, "pooler", None) is not None
                               and self.model_type == "vit")
        self.source = source
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, tokens: str | None = None,
                        device: str | torch.device = "cpu") -> "DinoConditioner":
        """Load a local ``transformers`` ViT directory (``config.json`` + weights) or a saved conditioner."""
        _quiet_transformers()
        d = Path(directory)
        if not (d / "config.json").is_file():
            raise LatentmedError(f"no ViT weights at {d.resolve()} (looked for {d / 'config.json'} and "
                                 f"model.safetensors). {WEIGHTS_HELP}")
        meta = read_json(d / CONDITIONER_JSON) if (d / CONDITIONER_JSON).is_file() else {}
        model_type = read_json(d / "config.json").get("model_type")
        klass = _backbone_class(model_type)
        kwargs = {"add_pooling_layer": True} if model_type == "vit" else {}
        try:
            backbone, info = klass.from_pretrained(str(d), output_loading_info=True, **kwargs)
        except OSError as exc:
            raise LatentmedError(f"cannot load ViT weights from {d.resolve()}: {exc}. {WEIGHTS_HELP}") from exc
        has_pooler = model_type == "vit" and not any(k.startswith("pooler") for k in info["missing_keys"])
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        pre = d / "preprocessor_config.json"
        if pre.is_file():
            p = read_json(pre)
            mean, std = tuple(p.get("image_mean", mean)), tuple(p.get("image_std", std))
        mean, std = tuple(meta.get("mean", mean)), tuple(meta.get("std", std))
        return cls(backbone, tokens=tokens or meta.get("tokens", "global"),
                   image_size=meta.get("image_size"), mean=mean, std=std,
                   use_pooler=meta.get("use_pooler", has_pooler), source=meta.get("source", str(d))).to(device)

    @classmethod
    def tiny(cls, kind: str = "dinov2_with_registers", tokens: str = "global", image_size: int = 32,
             patch_size: int = 8, hidden_size: int = 32, layers: int = 2, seed: int = 0) -> "DinoConditioner":
        """A small randomly initialised ViT (tests, CPU demos): same token layout as the real models."""
        import transformers

        _quiet_transformers()
        common = dict(hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=max(1, hidden_size // 16),
                      intermediate_size=2 * hidden_size, image_size=image_size, patch_size=patch_size)
        if kind == "vit":
            config = transformers.ViTConfig(**common)
        elif kind == "dinov2_with_registers":
            config = transformers.Dinov2WithRegistersConfig(num_register_tokens=4, **common)
        elif kind == "dinov2":
            config = transformers.Dinov2Config(**common)
        else:
            raise LatentmedError(f"unknown tiny ViT kind {kind!r}; expected vit, dinov2 or dinov2_with_registers.")
        torch.manual_seed(seed)
        backbone = _backbone_class(config.model_type)(config)
        return cls(backbone, tokens=tokens, use_pooler=False, source=f"tiny-{kind}-seed{seed}")

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """``transformers`` layout + ``conditioner.json`` (token selection, input size, normalisation)."""
        _quiet_transformers()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(str(d))
        write_json(d / CONDITIONER_JSON, self.describe())
        return d

    def describe(self) -> dict:
        """JSON-able description (stored as ``RUN/conditioner/conditioner.json``)."""
        return {"model_type": self.model_type, "tokens": self.tokens, "image_size": self.image_size,
                "patch_size": self.patch_size, "num_registers": self.num_registers, "use_pooler": self.use_pooler,
                "num_tokens": self.num_tokens, "width": self.width, "mean": self.mean.flatten().tolist(),
                "std": self.std.flatten().tolist(), "source": self.source, "id": self.conditioner_id}

    # ---- properties ---------------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Token width D (the UNet's ``cross_attention_dim``)."""
        return int(self.backbone.config.hidden_size)

    @property
    def num_global(self) -> int:
        return 1 + self.num_registers

    @property
    def num_tokens(self) -> int:
        """Number of conditioning tokens N for the configured selection."""
        n = self.num_global + int(self.use_pooler)
        if self.tokens == "all":
            n += (self.image_size // self.patch_size) ** 2
        return n

    @property
    def conditioner_id(self) -> str:
        """Short hash of weights + token selection (cache keys)."""
        h = hashlib.sha1(json.dumps([self.model_type, self.tokens, self.image_size, self.use_pooler]).encode())
        for k, v in sorted(self.backbone.state_dict().items())[:4]:
            h.update(k.encode())
            h.update(v.detach().float().cpu().numpy().tobytes()[:4096])
        return h.hexdigest()[:12]

    # ---- computation ----------------------------------------------------------------------------------------
    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images ``[B, 1|3, H, W]`` -> normalised ``[B, 3, S, S]`` ViT input."""
        expect(x.ndim == 4 and x.shape[1] in (1, 3),
               f"conditioner input must be [B, 1 or 3, H, W] in [-1, 1], got shape {tuple(x.shape)}.")
        x = (x.float().clamp(-1, 1) + 1) / 2
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False,
                              antialias=True).clamp(0, 1)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Conditioning tokens ``[B, N, D]`` of images ``x`` in [-1, 1]."""
        pixels = self.preprocess(x).to(next(self.backbone.parameters()).dtype)
        out = self.backbone(pixel_values=pixels)
        seq = out.last_hidden_state
        toks = seq if self.tokens == "all" else seq[:, : self.num_global]
        if self.use_pooler:
            toks = torch.cat([toks[:, :1], out.pooler_output[:, None], toks[:, 1:]], dim=1)
        return toks.float()

    def train(self, mode: bool = True) -> "DinoConditioner":  # stays frozen in eval mode
        return super().train(False)


def load_conditioner(spec: str | os.PathLike, tokens: str | None = None) -> DinoConditioner:
    """``tiny`` / ``tiny-vit`` / ``tiny-dinov2`` (random, for tests) or a local directory."""
    s = str(spec)
    if s.startswith("tiny"):
        kind = {"tiny": "dinov2_with_registers", "tiny-vit": "vit", "tiny-dinov2": "dinov2",
                "tiny-dinov2-reg": "dinov2_with_registers"}.get(s)
        expect(kind is not None, f"unknown tiny conditioner {s!r}; use tiny, tiny-vit, tiny-dinov2 or a directory.")
        return DinoConditioner.tiny(kind, tokens=tokens or "global")
    return DinoConditioner.from_pretrained(s, tokens=tokens)
