"""Frozen self-supervised ViT conditioners (DiNO-Diffusion, Sec. 2: the UNet cross-attends to DINO tokens).

Supported backbones (``transformers``, always loaded from a LOCAL directory, never downloaded):

- DINO v1 ViT-B/16 (``facebook/dino-vitb16``): ``ViTModel``; tokens ``[CLS, patches]``.
- DINOv2 ViT-B/14 with 4 registers (``facebook/dinov2-with-registers-base``):
  ``Dinov2WithRegistersModel``; tokens ``[CLS, 4 registers, patches]``.
- plain DINOv2 (``Dinov2Model``) also loads.

Token selection: ``global`` (default) keeps CLS (+ registers, + the ViT pooler output when
the checkpoint has trained pooler weights); ``all`` adds the patch tokens (the paper's
ablation: the UNet can then copy the image). Images in [-1, 1] (1 or 3 channels) are
mapped to 3 channels and preprocessed as the backbone expects (:func:`vit_preprocessing`): the
folder's image processor (``preprocessor_config.json``: resize, centre crop, resampling,
mean/std) or the model's documented defaults: DINOv2 (``BitImageProcessor`` of
``facebook/dinov2-*``) resizes the shortest edge to 256 (bicubic) and centre-crops 224; DINO v1
(``ViTImageProcessor``) resizes to its ``config.image_size`` (224) directly (bilinear); both with
ImageNet's mean/std. For DINOv2 not ``config.image_size`` (518: the size of its position-embedding
grid, which it interpolates, not its input).

A randomly initialised ViT (``tiny*``) is NOT DINO: its tokens carry label information but
hardly vary between images (mean pairwise CLS cosine ~0.998 on chest2d); :attr:`label` says
"random ViT" so tables and reports never pass it off as DINO.

:class:`PCAConditioner` needs no download: tokens are the whitened principal components of
unlabelled images (pixels standardised over the pool), projected to the token width.

Token standardisation: :meth:`fit_standardisation` stores the per-(token, channel)
mean and std of the tokens over an unlabelled pool WITH the conditioner
(``token_stats.safetensors``); ``forward`` then returns ``(tokens - mean) / std``, so tokens of
every backbone have unit spread (a random ViT's 1% differences become O(1)).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from latentmed.errors import LatentmedError, expect
from latentmed.io import read_json, write_json

TOKEN_MODES = ("global", "all")
CONDITIONER_JSON = "conditioner.json"
TOKEN_STATS = "token_stats.safetensors"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_BACKBONES = {"vit": "ViTModel", "dinov2": "Dinov2Model", "dinov2_with_registers": "Dinov2WithRegistersModel"}
#: documented preprocessing when a folder has no preprocessor_config.json (see the module docstring)
_DEFAULT_PREPROCESSING = {"vit": {"image_size": None, "resize": None, "resample": "bilinear"},  # config.image_size
                          "dinov2": {"image_size": 224, "resize": 256, "resample": "bicubic"},
                          "dinov2_with_registers": {"image_size": 224, "resize": 256, "resample": "bicubic"}}
_PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}
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


def vit_preprocessing(directory: str | os.PathLike, model_type: str) -> dict:
    """``image_size`` (input side), ``resize`` (shortest edge before the centre crop, or ``None``: resize to
    ``image_size`` directly), ``resample``, ``mean``, ``std`` from ``DIR/preprocessor_config.json``
    (transformers' ``size``: ``{"shortest_edge"}``, ``{"height", "width"}`` or an int; ``crop_size``;
    ``do_center_crop``; ``resample`` as PIL codes), else the documented defaults of ``model_type``."""
    out = {**_DEFAULT_PREPROCESSING[model_type], "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    path = Path(directory) / "preprocessor_config.json"
    if not path.is_file():
        return out
    p = read_json(path)

    def side(v):
        if isinstance(v, dict):
            sides = {v[k] for k in ("height", "width", "shortest_edge") if k in v}
            expect(len(sides) == 1, f"{path}: size {v} is not square; latentmed feeds square ViT inputs.")
            return int(sides.pop())
        return int(v)

    size = p.get("size")
    if size is None:  # no resize given: keep the defaults, take the normalisation
        return {**out, "mean": tuple(p.get("image_mean", IMAGENET_MEAN)), "std": tuple(p.get("image_std", IMAGENET_STD))}
    shortest = isinstance(size, dict) and "shortest_edge" in size
    crop = side(p["crop_size"]) if p.get("do_center_crop", False) and p.get("crop_size") is not None else None
    resample = p.get("resample", 3 if shortest else 2)
    expect(resample in _PIL_RESAMPLE, f"{path}: resample={resample!r}; expected a PIL code in {sorted(_PIL_RESAMPLE)}.")
    if p.get("do_resize", True) and (shortest or crop is not None):
        out.update(image_size=crop or side(size), resize=side(size))
    else:
        out.update(image_size=crop or side(size), resize=None)
    out.update(resample=_PIL_RESAMPLE[resample], mean=tuple(p.get("image_mean", IMAGENET_MEAN)),
               std=tuple(p.get("image_std", IMAGENET_STD)))
    return out


class TokenStandardisation:
    """Mixin: optional pool standardisation of the tokens (buffers ``token_mean``/``token_std`` ``[N, D]``)."""

    token_mean: torch.Tensor | None
    token_std: torch.Tensor | None

    def _init_standardisation(self) -> None:
        self.register_buffer("token_mean", None)
        self.register_buffer("token_std", None)

    @property
    def standardised(self) -> bool:
        return self.token_mean is not None

    @torch.no_grad()
    def fit_standardisation(self, images: torch.Tensor, batch_size: int = 64, eps: float = 1e-6):
        """Store the mean and std over ``images`` (an unlabelled pool, [-1, 1]) of each token channel."""
        expect(images.ndim == 4 and len(images) >= 2,
               f"fit_standardisation needs >= 2 images [N, C, H, W], got shape {tuple(images.shape)}.")
        self.token_mean = self.token_std = None
        toks = torch.cat([self.forward(c) for c in images.split(batch_size)]).double()
        self.token_mean = toks.mean(0).float()
        self.token_std = toks.std(0).clamp_min(eps).float()
        return self

    def _standardise(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.token_mean is None:
            return tokens
        return (tokens - self.token_mean.to(tokens)) / self.token_std.to(tokens)

    def _save_stats(self, d: Path) -> None:
        from latentmed.io import save_safetensors

        if self.standardised:
            save_safetensors(d / TOKEN_STATS, {"token_mean": self.token_mean.contiguous(),
                                               "token_std": self.token_std.contiguous()})
        elif (d / TOKEN_STATS).exists():
            (d / TOKEN_STATS).unlink()

    def _load_stats(self, d: Path) -> None:
        from latentmed.io import load_safetensors

        if (d / TOKEN_STATS).is_file():
            stats = load_safetensors(d / TOKEN_STATS)
            expect(tuple(stats["token_mean"].shape) == (self.num_tokens, self.width),
                   f"{d / TOKEN_STATS}: token statistics of shape {tuple(stats['token_mean'].shape)} do not fit "
                   f"{self.num_tokens} tokens of width {self.width}; refit them (fit_standardisation).")
            self.token_mean, self.token_std = stats["token_mean"], stats["token_std"]

    def _stats_hash(self, h) -> None:
        if self.standardised:
            h.update(self.token_mean.numpy().tobytes())
            h.update(self.token_std.numpy().tobytes())


class DinoConditioner(TokenStandardisation, nn.Module):
    """Frozen ViT -> conditioning tokens ``[B, N, D]`` for cross-attention.

    ``mean``/``std`` are the ViT's normalisation; ``image_size`` is the ViT input side; ``resize``
    (shortest edge, resampled with ``resample``) is applied before a centre crop to ``image_size``
    (``None``: resize to ``image_size`` directly). :meth:`from_pretrained` takes them from
    :func:`vit_preprocessing`.
    """

    def __init__(self, backbone: nn.Module, tokens: str = "global", image_size: int | None = None,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, use_pooler: bool = False, source: str = "random",
                 resize: int | None = None, resample: str = "bicubic"):
        super().__init__()
        expect(tokens in TOKEN_MODES, f"tokens must be one of {TOKEN_MODES}, got {tokens!r}.")
        self.backbone = backbone.eval().requires_grad_(False)
        cfg = backbone.config
        self.model_type = cfg.model_type
        self.tokens = tokens
        self.image_size = int(image_size or cfg.image_size)
        expect(resize is None or int(resize) >= self.image_size,
               f"resize={resize} (shortest edge) is smaller than the centre crop {self.image_size}.")
        expect(resample in _PIL_RESAMPLE.values(), f"resample={resample!r}: expected one of {list(_PIL_RESAMPLE.values())}.")
        self.resize = None if resize is None else int(resize)
        self.resample = resample
        self.patch_size = int(cfg.patch_size)
        self.num_registers = int(getattr(cfg, "num_register_tokens", 0) or 0)
        self.use_pooler = bool(use_pooler and getattr(backbone, "pooler", None) is not None
                               and self.model_type == "vit")
        self.source = source
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self._init_standardisation()

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
        # a saved conditioner keeps its own preprocessing (older ones: a direct bicubic resize to image_size)
        pre = ({k: meta.get(k, dflt) for k, dflt in (("image_size", None), ("resize", None), ("resample", "bicubic"),
                                                       ("mean", IMAGENET_MEAN), ("std", IMAGENET_STD))}
               if meta else vit_preprocessing(d, model_type))
        cond = cls(backbone, tokens=tokens or meta.get("tokens", "global"), image_size=pre["image_size"],
                   mean=tuple(pre["mean"]), std=tuple(pre["std"]), resize=pre["resize"], resample=pre["resample"],
                   use_pooler=meta.get("use_pooler", has_pooler), source=meta.get("source", str(d)))
        if tokens is None or tokens == meta.get("tokens", "global"):
            cond._load_stats(d)
        return cond.to(device)

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
        self._save_stats(d)
        write_json(d / CONDITIONER_JSON, self.describe())
        return d

    def describe(self) -> dict:
        """JSON-able description (stored as ``RUN/conditioner/conditioner.json``)."""
        return {"model_type": self.model_type, "tokens": self.tokens, "image_size": self.image_size,
                "resize": self.resize, "resample": self.resample, "patch_size": self.patch_size, "num_registers": self.num_registers, "use_pooler": self.use_pooler,
                "num_tokens": self.num_tokens, "width": self.width, "mean": self.mean.flatten().tolist(),
                "std": self.std.flatten().tolist(), "source": self.source, "id": self.conditioner_id,
                "kind": "vit", "random_init": self.random_init, "standardised": self.standardised,
                "label": self.label}

    @property
    def random_init(self) -> bool:
        """True for a randomly initialised ViT (``tiny*``): not DINO, whatever the code around it says."""
        return self.source.startswith("tiny")

    @property
    def label(self) -> str:
        """How tables and reports name this conditioner."""
        std = ", pool-standardised" if self.standardised else ""
        if self.random_init:
            return f"random ViT (untrained {self.source}, NOT DINO{std})"
        return f"DINO {self.model_type} ({self.source}{std})"

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
        prep = [] if self.resize is None and self.resample == "bicubic" else [self.resize, self.resample]
        h = hashlib.sha1(json.dumps([self.model_type, self.tokens, self.image_size, self.use_pooler] + prep).encode())
        for k, v in sorted(self.backbone.state_dict().items())[:4]:
            h.update(k.encode())
            h.update(v.detach().float().cpu().numpy().tobytes()[:4096])
        self._stats_hash(h)
        return h.hexdigest()[:12]

    # ---- computation ----------------------------------------------------------------------------------------
    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images ``[B, 1|3, H, W]`` -> normalised ``[B, 3, S, S]`` ViT input (resize, centre crop)."""
        expect(x.ndim == 4 and x.shape[1] in (1, 3),
               f"conditioner input must be [B, 1 or 3, H, W] in [-1, 1], got shape {tuple(x.shape)}.")
        x = (x.float().clamp(-1, 1) + 1) / 2
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        S = self.image_size
        h, w = x.shape[-2:]
        # transformers' get_resize_output_image_size (shortest edge) and center_crop arithmetic
        size = (S, S) if self.resize is None else \
            ((self.resize, int(self.resize * w / h)) if h <= w else (int(self.resize * h / w), self.resize))
        if (h, w) != size:
            x = _resize(x, size, self.resample)
        top, left = (size[0] - S) // 2, (size[1] - S) // 2
        x = x[..., top:top + S, left:left + S]
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
        return self._standardise(toks.float())

    def train(self, mode: bool = True) -> "DinoConditioner":  # stays frozen in eval mode
        return super().train(False)


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Resample ``x`` in [0, 1] to ``size`` (antialiased, like PIL) and clip to [0, 1] as 8-bit images are."""
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True).clamp(0, 1)


class PCAConditioner(TokenStandardisation, nn.Module):
    """Tokens from a PCA of unlabelled images: no download, fitted on the pool.

    Images in [-1, 1] are area-resized to ``image_size``, standardised per pixel with the pool's
    mean/std, projected on the top ``k`` principal axes and whitened (scores / sqrt(eigenvalue));
    a fixed orthonormal map (``projection [k, N*D]``, seeded; the identity when ``k = N*D``) gives
    ``N`` tokens of width ``D``, standardised with the pool's token mean/std (:meth:`fit`).
    """

    def __init__(self, pixel_mean: torch.Tensor, pixel_std: torch.Tensor, components: torch.Tensor,
                 scale: torch.Tensor, projection: torch.Tensor, image_size: int, num_tokens: int = 1,
                 source: str = "pca"):
        super().__init__()
        expect(projection.shape[1] % num_tokens == 0, f"projection width {projection.shape[1]} is not a multiple "
                                                      f"of num_tokens={num_tokens}.")
        self.register_buffer("pixel_mean", pixel_mean.float())
        self.register_buffer("pixel_std", pixel_std.float())
        self.register_buffer("components", components.float())
        self.register_buffer("scale", scale.float())
        self.register_buffer("projection", projection.float())
        self.image_size, self._num_tokens, self.source = int(image_size), int(num_tokens), source
        self._init_standardisation()

    @classmethod
    def fit(cls, images: torch.Tensor, width: int = 64, num_tokens: int = 1, n_components: int | None = None,
            image_size: int = 32, seed: int = 0, batch_size: int = 256) -> "PCAConditioner":
        """Fit on ``images [N, 1|3, H, W]`` in [-1, 1] (an unlabelled pool); tokens are pool-standardised."""
        from sklearn.decomposition import PCA

        expect(images.ndim == 4 and images.shape[1] in (1, 3),
               f"PCAConditioner.fit needs images [N, 1 or 3, H, W] in [-1, 1], got {tuple(images.shape)}.")
        total = int(width) * int(num_tokens)
        k = int(n_components or total)
        expect(1 <= k <= min(total, len(images) - 1, image_size ** 2),
               f"n_components={k} must be in [1, min(width*num_tokens={total}, images-1={len(images) - 1}, "
               f"pixels={image_size ** 2})].")
        flat = _pool_pixels(images, image_size).double()
        mean, std = flat.mean(0), flat.std(0).clamp_min(1e-6)
        pca = PCA(n_components=k, svd_solver="full").fit(((flat - mean) / std).numpy())
        if k == total:
            proj = torch.eye(k)
        else:  # a fixed random orthonormal map from k scores to N*D channels
            g = torch.Generator().manual_seed(seed)
            proj = torch.linalg.qr(torch.randn(total, k, generator=g, dtype=torch.float64))[0].T.float()
        cond = cls(mean, std, torch.as_tensor(pca.components_), torch.as_tensor(np.sqrt(pca.explained_variance_)),
                   proj, image_size, num_tokens, source=f"pca{k}-{len(images)}img-{image_size}px")
        return cond.fit_standardisation(images, batch_size)

    @property
    def width(self) -> int:
        return int(self.projection.shape[1]) // self._num_tokens

    @property
    def num_tokens(self) -> int:
        return self._num_tokens

    @property
    def random_init(self) -> bool:
        return False

    @property
    def label(self) -> str:
        return f"PCA tokens ({self.source}, pool-standardised)" if self.standardised else f"PCA tokens ({self.source})"

    @property
    def conditioner_id(self) -> str:
        h = hashlib.sha1(json.dumps(["pca", self.image_size, self._num_tokens]).encode())
        for buf in (self.pixel_mean, self.components, self.projection):
            h.update(buf.numpy().tobytes()[:65536])
        self._stats_hash(h)
        return h.hexdigest()[:12]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expect(x.ndim == 4 and x.shape[1] in (1, 3),
               f"conditioner input must be [B, 1 or 3, H, W] in [-1, 1], got shape {tuple(x.shape)}.")
        z = (_pool_pixels(x.to(self.pixel_mean.device), self.image_size) - self.pixel_mean) / self.pixel_std
        scores = (z @ self.components.T) / self.scale
        return self._standardise((scores @ self.projection).view(len(x), self._num_tokens, self.width))

    def describe(self) -> dict:
        return {"kind": "pca", "image_size": self.image_size, "num_tokens": self.num_tokens, "width": self.width,
                "n_components": int(self.components.shape[0]), "source": self.source, "id": self.conditioner_id,
                "random_init": False, "standardised": self.standardised, "label": self.label}

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        from latentmed.io import save_safetensors

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_safetensors(d / "pca.safetensors", {k: getattr(self, k).contiguous() for k in
                                                 ("pixel_mean", "pixel_std", "components", "scale", "projection")})
        self._save_stats(d)
        write_json(d / CONDITIONER_JSON, self.describe())
        return d

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu") -> "PCAConditioner":
        from latentmed.io import load_safetensors

        d = Path(directory)
        meta = read_json(d / CONDITIONER_JSON)
        t = load_safetensors(d / "pca.safetensors")
        cond = cls(t["pixel_mean"], t["pixel_std"], t["components"], t["scale"], t["projection"],
                   meta["image_size"], meta["num_tokens"], source=meta.get("source", "pca"))
        cond._load_stats(d)
        return cond.to(device)

    def train(self, mode: bool = True) -> "PCAConditioner":
        return super().train(False)


def _pool_pixels(x: torch.Tensor, size: int) -> torch.Tensor:
    """[-1, 1] images -> grey, area-resized to ``size``, flattened ``[B, size*size]``."""
    x = x.float().mean(1, keepdim=True)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="area")
    return x.flatten(1)


def conditioner_from_dir(directory: str | os.PathLike, tokens: str | None = None):
    """A saved conditioner folder: PCA (``conditioner.json`` kind ``pca``) or a ViT."""
    d = Path(directory)
    if (d / CONDITIONER_JSON).is_file() and read_json(d / CONDITIONER_JSON).get("kind") == "pca":
        return PCAConditioner.from_pretrained(d)
    return DinoConditioner.from_pretrained(d, tokens=tokens)


def load_conditioner(spec: str | os.PathLike, tokens: str | None = None):
    """``tiny`` / ``tiny-vit`` / ``tiny-dinov2`` (random ViTs, for tests; labelled as such) or a local
    directory (a ViT, or a saved :class:`PCAConditioner`)."""
    s = str(spec)
    if s.startswith("tiny"):
        kind = {"tiny": "dinov2_with_registers", "tiny-vit": "vit", "tiny-dinov2": "dinov2",
                "tiny-dinov2-reg": "dinov2_with_registers"}.get(s)
        expect(kind is not None, f"unknown tiny conditioner {s!r}; use tiny, tiny-vit, tiny-dinov2 or a directory.")
        return DinoConditioner.tiny(kind, tokens=tokens or "global")
    return conditioner_from_dir(s, tokens=tokens)
