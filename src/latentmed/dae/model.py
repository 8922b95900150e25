"""The diffusion autoencoder (DiffAE; Preechakul et al. 2022).

``z_sem = Enc(x0)`` captures semantics; the conditional DDIM decoder ``p(x_{t-1} | x_t, z_sem)``
captures the rest, and DDIM inversion of ``x0`` given ``z_sem`` gives the stochastic code
``x_T`` (Sec. 3.2). Decoding ``(z_sem, x_T)`` with the inversion's grid reconstructs ``x0``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from latentmed.diffusion import (Denoiser, check_prediction, ddim_invert, ddim_sample, ddim_timesteps, get_schedule,
                                 slerp)
from latentmed.errors import LatentmedError
from latentmed.nn import DiffAEUNet, EncoderConfig, SemanticEncoder, UNetConfig
from latentmed.pretrained import PretrainedMixin
from latentmed.train.accel import amp_autocast, check_precision, compile_module, precision_name, resolve_precision


#: Flat encoder keys of configs written before the encoder section (``enc_pool`` -> ``encoder.pool``); still read.
LEGACY_ENCODER_KEYS = {"enc_channel_mult": "channel_mult", "enc_num_res_blocks": "num_res_blocks",
                       "enc_attention_resolutions": "attention_resolutions", "enc_pool": "pool", "enc_middle": "middle"}


def upgrade_dae_config(data: dict[str, Any]) -> dict[str, Any]:
    """A DAE config mapping with the legacy flat ``enc_*`` keys moved into its ``encoder`` section."""
    data = dict(data)
    moved = {new: data.pop(old) for old, new in LEGACY_ENCODER_KEYS.items() if old in data}
    if moved:
        data["encoder"] = {**moved, **dict(data.get("encoder") or {})}
    return data


@dataclass
class DAEConfig(UNetConfig):
    """Architecture and diffusion settings of a :class:`DiffusionAutoencoder` (DiffAE Table 7 names).

    The fields of :class:`~latentmed.nn.UNetConfig` describe the conditional decoder (and the image,
    ``z_dim`` and width the encoder shares); ``encoder`` holds the semantic encoder's own settings.
    ``precision``: the autocast of encoding and decoding (``no | bf16 | auto``; a DAE run saves its
    ``train.mixed_precision`` here, so that inference runs as training did, as EDM keeps it on the
    network wrapper).
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    schedule: str = "linear"
    prediction: str = "eps"
    clip_x0: bool = True
    precision: str = "no"

    def __post_init__(self) -> None:
        precision_name(self.precision, "precision")
        get_schedule(self.schedule)
        check_prediction(self.prediction)
        if self.dims not in (2, 3):
            raise LatentmedError(f"dims must be 2 or 3, got {self.dims}.")
        factor = 2 ** (len(self.channel_mult) - 1)
        if self.image_size % factor:
            near = sorted({s for s in (self.image_size // factor * factor, -(-self.image_size // factor) * factor)
                           if s > 0}, key=lambda s: (abs(s - self.image_size), s))
            raise LatentmedError(f"image_size {self.image_size} must be divisible by {factor} for channel_mult "
                                 f"{self.channel_mult}; resize the images to the nearest valid size "
                                 f"({' or '.join(map(str, near))}, e.g. --size {near[0]}) or use fewer levels.")

    def encoder_head(self) -> str:
        """The semantic encoder's head in words (for ``latentmed info`` and reports)."""
        enc = self.encoder
        pool = ("average pooling + 1x1 conv (DiffAE)" if enc.pool == "avg"
                else "flatten + linear (keeps where features are)")
        return f"encoder.pool={enc.pool}: {pool}; middle block (ResBlock, attention, ResBlock): " + (
            "yes" if enc.middle else "no")


class DiffusionAutoencoder(nn.Module, PretrainedMixin):
    """Semantic encoder + conditional diffusion decoder.

    ``forward(x_t, t, x_start=None, z_sem=None)`` is the training-time network call (the
    encoder runs on ``x_start`` when ``z_sem`` is not given, so it trains end to end through
    the denoising loss). Inference methods take images in [-1, 1], shape ``[B, C, *spatial]``.
    """

    config_class = DAEConfig

    @classmethod
    def upgrade_config(cls, meta: dict[str, Any]) -> dict[str, Any]:
        """Folders saved before the encoder section still load (flat ``enc_*`` keys)."""
        return upgrade_dae_config(meta)

    def __init__(self, config: DAEConfig):
        super().__init__()
        self.config = config
        self.encoder = SemanticEncoder(config.encoder, config)
        self.unet = DiffAEUNet(config)
        self.schedule = get_schedule(config.schedule)
        self._model_id: str | None = None
        self.set_inference()

    # ----------------------------------------------------------------- training call
    def forward(self, x_t: torch.Tensor, t: torch.Tensor, x_start: torch.Tensor | None = None,
                z_sem: torch.Tensor | None = None) -> torch.Tensor:
        if z_sem is None:
            if x_start is None:
                raise LatentmedError("DiffusionAutoencoder.forward needs x_start (to encode) or z_sem.")
            z_sem = self.encoder(x_start)
        return self.unet(x_t, t, z_sem)

    # ----------------------------------------------------------------- inference
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def model_id(self) -> str:
        """Short hash of the weights: latents and graders remember which DAE made them."""
        if self._model_id is None:
            h = hashlib.sha256()
            for k, v in sorted(self.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
            self._model_id = h.hexdigest()[:16]
        return self._model_id

    def load_state_dict(self, *args, **kwargs):  # weights changed: forget the cached id
        self._model_id = None
        return super().load_state_dict(*args, **kwargs)

    def check_images(self, x: torch.Tensor, name: str = "images") -> torch.Tensor:
        """Validate shape, channels, size and finiteness; return ``x`` on the model's device as float."""
        c = self.config
        want = f"[B, {c.in_channels}, " + ", ".join([str(c.image_size)] * c.dims) + "]"
        if not torch.is_tensor(x):
            raise LatentmedError(f"{name}: expected a torch tensor of shape {want}, got {type(x).__name__}.")
        if x.ndim != c.dims + 2:
            raise LatentmedError(f"{name}: expected shape {want}, got {tuple(x.shape)}. Add a batch dimension "
                                 "with x[None] for one image.")
        if x.shape[1] != c.in_channels:
            raise LatentmedError(f"{name}: the model takes {c.in_channels} channel(s), got {x.shape[1]} "
                                 f"(shape {tuple(x.shape)}). Convert to {'grayscale' if c.in_channels == 1 else 'RGB'}.")
        if any(s != c.image_size for s in x.shape[2:]):
            raise LatentmedError(f"{name}: the model takes {c.image_size}px images, got spatial size "
                                 f"{tuple(x.shape[2:])}. Resize to {c.image_size} (e.g. --size {c.image_size}).")
        if not torch.isfinite(x).all():
            raise LatentmedError(f"{name}: contains NaN or infinite values.")
        return x.to(self.device, torch.float32)

    def set_inference(self, precision: str | None = None, compile: bool = False) -> "DiffusionAutoencoder":
        """Speed settings of ``encode``, ``encode_stochastic`` and ``decode``; returns ``self``.

        ``precision`` (default: ``config.precision``, saved with the model) ``"bf16"`` autocasts the
        encoder and the decoder UNet to bfloat16 (CPU or GPU; ``"auto"``: bf16 on CPUs with native
        bf16, resolved on the device of each call, as in training); their outputs come back as
        float32, so the DDIM updates stay in fp32. ``compile=True`` runs the UNet through
        ``torch.compile`` (falls back with a warning where it cannot); :func:`~latentmed.dae.load_dae`
        applies the run's ``train.compile``.
        """
        precision = self.config.precision if precision is None else precision
        check_precision(precision, self.device.type, "precision")  # fp16 here: an error now, not at first use
        self.inference_precision = precision
        # a compiled *function*, not a module attribute, so the state dict keeps its keys
        self._compiled_unet = compile_module(self.unet.forward, self.device.type) if compile else None
        return self

    def _amp(self):
        return amp_autocast(self.device.type, resolve_precision(self.inference_precision, self.device.type))

    def _net(self, x: torch.Tensor, t: torch.Tensor, z_sem: torch.Tensor) -> torch.Tensor:
        with self._amp():
            return (self._compiled_unet or self.unet)(x, t, z_sem).float()

    def denoiser(self, clip: bool | None = None) -> Denoiser:
        """The decoder as a :class:`Denoiser` taking ``cond = z_sem`` (with the :meth:`set_inference` settings)."""
        clip = self.config.clip_x0 if clip is None else clip
        return Denoiser(self._net, self.schedule, self.config.prediction, clip_x0=(-1.0, 1.0) if clip else None)

    def timesteps(self, steps: int) -> torch.Tensor:
        """The DDIM grid of ``steps`` steps shared by inversion and decoding (integer steps for ``linear``)."""
        return ddim_timesteps(steps, schedule=self.schedule)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Semantic code ``z_sem = Enc(x)``, shape ``[B, z_dim]``."""
        x = self.check_images(x)
        with self._amp():
            return self.encoder(x).float()

    @torch.no_grad()
    def encode_stochastic(self, x: torch.Tensor, z_sem: torch.Tensor, steps: int = 250, callback=None) -> torch.Tensor:
        """Stochastic code ``x_T`` by deterministic DDIM inversion of ``x`` given ``z_sem`` (DiffAE eq. 8)."""
        x = self.check_images(x)
        self._check_z(z_sem, x.shape[0])
        return ddim_invert(self.denoiser(clip=False), x, self.timesteps(steps), cond=z_sem.to(x), callback=callback)

    @torch.no_grad()
    def decode(self, z_sem: torch.Tensor, x_T: torch.Tensor | None = None, steps: int = 100,
               generator: torch.Generator | None = None, callback=None) -> torch.Tensor:
        """Decode ``(z_sem, x_T)`` with DDIM; ``x_T = None`` draws Gaussian noise (stochastic decoding)."""
        z_sem = self._check_z(z_sem)
        c = self.config
        if x_T is None:
            shape = (z_sem.shape[0], c.in_channels, *([c.image_size] * c.dims))
            x_T = torch.randn(shape, generator=generator, device=generator.device if generator else self.device)
        x_T = x_T.to(self.device, torch.float32)
        if x_T.shape[0] != z_sem.shape[0]:
            raise LatentmedError(f"decode: {z_sem.shape[0]} z_sem but {x_T.shape[0]} x_T; pass one x_T per z_sem.")
        return ddim_sample(self.denoiser(), x_T, self.timesteps(steps), cond=z_sem, callback=callback)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, steps: int = 100, inversion: bool = True, inversion_steps: int | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Encode then decode. ``inversion=True`` uses x_T from DDIM inversion, else random x_T."""
        z = self.encode(x)
        x_T = self.encode_stochastic(x, z, inversion_steps or steps) if inversion else None
        return self.decode(z, x_T, steps, generator=generator)

    @torch.no_grad()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, n: int = 8, steps: int = 100, z_mode: str = "slerp") -> torch.Tensor:
        """Decode ``n`` points between images ``a`` and ``b`` (``[1, C, ...]`` each).

        x_T is interpolated by slerp (Gaussian codes); z_sem by ``z_mode`` ('slerp' or 'lerp', the
        latter as in DiffAE's released code). Returns ``[n, C, ...]``.
        """
        if n < 2:
            raise LatentmedError(f"interpolate: n must be >= 2, got {n}.")
        pair = torch.cat([self.check_images(a, "a"), self.check_images(b, "b")])
        z = self.encode(pair)
        x_T = self.encode_stochastic(pair, z, steps)
        ws = torch.linspace(0, 1, n).tolist()
        zs = torch.cat([slerp(z[:1], z[1:], w) if z_mode == "slerp" else torch.lerp(z[:1], z[1:], w) for w in ws])
        xts = torch.cat([slerp(x_T[:1], x_T[1:], w) for w in ws])
        return self.decode(zs, xts, steps)

    def _check_z(self, z_sem: torch.Tensor, batch: int | None = None) -> torch.Tensor:
        if not torch.is_tensor(z_sem) or z_sem.ndim != 2 or z_sem.shape[1] != self.config.z_dim:
            got = tuple(z_sem.shape) if torch.is_tensor(z_sem) else type(z_sem).__name__
            raise LatentmedError(f"z_sem: expected shape [B, {self.config.z_dim}], got {got}. Latents from another "
                                 "DAE do not fit this one.")
        if batch is not None and z_sem.shape[0] != batch:
            raise LatentmedError(f"z_sem: {z_sem.shape[0]} codes for {batch} images.")
        if not torch.isfinite(z_sem).all():
            raise LatentmedError("z_sem contains NaN or infinite values.")
        return z_sem.to(self.device, torch.float32)

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts of the encoder, the decoder UNet and the total."""
        enc = sum(p.numel() for p in self.encoder.parameters())
        dec = sum(p.numel() for p in self.unet.parameters())
        return {"encoder": enc, "decoder": dec, "total": enc + dec}

