"""The latent diffusion model of DiNO-Diffusion: AutoencoderKL + cross-attention UNet + frozen DINO tokens.

- VAE (diffusers ``AutoencoderKL``): trained here (reconstruction + KL) or a local
  Stable-Diffusion-compatible directory. Latents are multiplied by ``scaling_factor``
  (Rombach et al. 2022, Sec. 4.3.2: 1 / std of the latents, computed from the data).
- UNet (diffusers ``UNet2DConditionModel``) with ``cross_attention_dim`` = token width,
  predicting ``eps`` (the paper) or ``v``; continuous t in [0, 1] maps to its timestep
  ``1000 t - timestep_offset``. With the offset 1 (runs written since it exists) the linear
  schedule's ``t = (k + 1) / 1000`` is diffusers' timestep index ``k`` of ``alphas_cumprod[k]``,
  so the loss and the DDIM sampler equal diffusers' ``DDPMScheduler``/``DDIMScheduler`` on the
  same UNet (tests/test_ldm_diffusers_equivalence.py); runs whose ``ldm.json`` has no offset
  were trained with 0 and load with 0.
- Classifier-free guidance (Ho & Salimans 2022): the null condition is all-zero tokens;
  output = out(null) + w (out(cond) - out(null)).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from latentmed.errors import LatentmedError, expect
from latentmed.io import read_json, write_json

LDM_JSON = "ldm.json"
TIMESTEP_SCALE = 1000.0


@dataclass
class LDMConfig:
    """What ``RUN/ldm.json`` stores besides the three sub-models."""

    schedule: str = "linear"
    prediction: str = "eps"
    scaling_factor: float = 1.0
    image_size: int = 64
    image_channels: int = 1
    latent_channels: int = 4
    latent_size: int = 16
    cond_dropout: float = 0.1
    timestep_offset: float = 1.0  # UNet timestep = 1000 t - offset (1: diffusers' index; 0: runs before it)
    extra: dict = field(default_factory=dict)


# ---- builders ---------------------------------------------------------------------------------------------------
def build_vae(image_channels: int = 1, latent_channels: int = 4, block_out_channels=(32, 64, 64),
              layers_per_block: int = 1, norm_num_groups: int = 16, image_size: int = 64):
    """A small diffusers ``AutoencoderKL``; downsampling factor 2^(len(block_out_channels) - 1)."""
    from diffusers import AutoencoderKL

    n = len(block_out_channels)
    return AutoencoderKL(in_channels=image_channels, out_channels=image_channels, latent_channels=latent_channels,
                         down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
                         block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
                         norm_num_groups=norm_num_groups, sample_size=image_size)


def vae_downsample_factor(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def attention_heads(block_out_channels, head_channels: int = 32) -> tuple[int, ...]:
    """Heads per UNet level so that each head has ``head_channels`` channels (at least one head).

    diffusers' ``UNet2DConditionModel(attention_head_dim=...)`` is, for historical reasons, the number
    of heads, not their width (its own comment in ``__init__``); with 8 "head dims" a 32-channel level
    has 4-channel heads, whose self-attention is nearly uniform. Stable Diffusion 1.x has 40-160
    channels per head.
    """
    expect(int(head_channels) >= 1, f"head_channels must be a positive int, got {head_channels!r}.")
    for ch in block_out_channels:
        expect(ch % min(ch, head_channels) == 0,
               f"block_out_channels {tuple(block_out_channels)}: {ch} is not a multiple of "
               f"head_channels={head_channels}; choose widths that are multiples of the head width.")
    return tuple(max(1, int(ch) // int(head_channels)) for ch in block_out_channels)


def build_unet(latent_channels: int, latent_size: int, cross_attention_dim: int, block_out_channels=(32, 64),
               layers_per_block: int = 1, num_heads: int | tuple[int, ...] | None = None, norm_num_groups: int = 16,
               head_channels: int = 32):
    """A diffusers ``UNet2DConditionModel`` with cross-attention (and self-attention) at every level.

    Heads have ``head_channels`` channels each (:func:`attention_heads`) unless ``num_heads`` (diffusers'
    ``attention_head_dim``: a head COUNT, one or one per level) is given, as older runs did.
    """
    from diffusers import UNet2DConditionModel

    n = len(block_out_channels)
    heads = attention_heads(block_out_channels, head_channels) if num_heads is None else num_heads
    return UNet2DConditionModel(
        sample_size=latent_size, in_channels=latent_channels, out_channels=latent_channels,
        down_block_types=("CrossAttnDownBlock2D",) * n, up_block_types=("CrossAttnUpBlock2D",) * n,
        block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
        cross_attention_dim=cross_attention_dim, attention_head_dim=heads,
        norm_num_groups=norm_num_groups)


def load_vae(directory: str | os.PathLike):
    """A local diffusers ``AutoencoderKL`` directory (ours, or a Stable Diffusion ``vae/`` folder)."""
    from diffusers import AutoencoderKL

    d = Path(directory)
    if (d / "vae" / "config.json").is_file() and not (d / "config.json").is_file():
        d = d / "vae"
    if not (d / "config.json").is_file():
        raise LatentmedError(f"no VAE weights at {d.resolve()} (looked for {d / 'config.json'} and "
                             "diffusion_pytorch_model.safetensors). Train one with `latentmed ldm train-vae` or copy "
                             "a Stable-Diffusion-compatible `vae/` folder there (e.g. from stabilityai/sd-vae-ft-mse); "
                             "latentmed never downloads weights.")
    return AutoencoderKL.from_pretrained(str(d)).eval().requires_grad_(False)


def check_token_width(unet, conditioner) -> None:
    """Error unless the conditioner's token width equals the UNet's ``cross_attention_dim``."""
    cad = unet.config.cross_attention_dim
    if int(cad) != conditioner.width:
        raise LatentmedError(f"the conditioner gives tokens of width {conditioner.width} but the UNet cross-attends "
                             f"to width {cad}. Use the conditioner the UNet was trained with, or train a UNet with "
                             f"cross_attention_dim={conditioner.width}.")


# ---- the assembled model ----------------------------------------------------------------------------------------
class LatentUNet(nn.Module):
    """The diffusers UNet as a network ``net(z_t, t, tokens)`` of the denoiser contract
    (:class:`latentmed.diffusion.Denoiser`): continuous ``t`` in [0, 1] becomes timestep ``1000 t - timestep_offset``
    (offset 1: the linear schedule's ``t = (k + 1) / 1000`` is diffusers' timestep ``k``)."""

    def __init__(self, unet, timestep_offset: float = 1.0):
        super().__init__()
        self.unet = unet
        self.timestep_offset = float(timestep_offset)

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=z_t.device, dtype=torch.float32)
        t = t.expand(z_t.shape[0]) if t.ndim == 0 else t
        return self.unet(z_t, t * TIMESTEP_SCALE - self.timestep_offset, encoder_hidden_states=tokens.to(z_t.dtype)).sample

    def save_pretrained(self, directory, state_dict=None):
        """Save the inner diffusers UNet (``state_dict`` keys carry the ``unet.`` prefix)."""
        if state_dict is not None:
            self.unet.load_state_dict({k.removeprefix("unet."): v for k, v in state_dict.items()})
        self.unet.save_pretrained(str(directory))


class GuidedNet:
    """Classifier-free guidance around a ``net(z, t, tokens)``: null condition = zero tokens."""

    def __init__(self, net, guidance: float = 1.0):
        self.net, self.guidance = net, float(guidance)

    def __call__(self, z_t, t, tokens):
        if self.guidance == 1.0:
            return self.net(z_t, t, tokens)
        t = torch.as_tensor(t, device=z_t.device, dtype=torch.float32)
        t = t.expand(z_t.shape[0]) if t.ndim == 0 else t
        out = self.net(torch.cat([z_t, z_t]), torch.cat([t, t]), torch.cat([torch.zeros_like(tokens), tokens]))
        uncond, cond = out.chunk(2)
        return uncond + self.guidance * (cond - uncond)


class LatentDiffusion:
    """A loaded DiNO-Diffusion run: ``.vae``, ``.unet``, ``.conditioner``, ``.schedule``, ``.prediction``,
    ``.scaling_factor``; ``encode_images``, ``decode_latents``, ``condition``, ``sample``."""

    def __init__(self, vae, unet, conditioner, config: LDMConfig, device: str | torch.device = "cpu"):
        from latentmed.diffusion import check_prediction, get_schedule

        check_token_width(unet, conditioner)
        self.vae = vae.eval().requires_grad_(False).to(device)
        self.unet = unet.eval().requires_grad_(False).to(device)
        self.conditioner = conditioner.eval().to(device)
        self.config = config
        self.schedule = get_schedule(config.schedule)
        self.prediction = check_prediction(config.prediction)
        self.scaling_factor = float(config.scaling_factor)
        self.device = torch.device(device)

    @property
    def image_size(self) -> int:
        return self.config.image_size

    def _check_images(self, x: torch.Tensor) -> torch.Tensor:
        c, s = self.config.image_channels, self.config.image_size
        expect(x.ndim == 4 and x.shape[-2:] == (s, s) and x.shape[1] in (1, 3),
               f"expected images [B, {c}, {s}, {s}] in [-1, 1] for this run, got {tuple(x.shape)}: resize them "
               f"to {s}x{s}.")
        x = x.to(self.device, torch.float32)
        vc = self.vae.config.in_channels
        if x.shape[1] != vc:
            x = x.expand(-1, vc, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        return x

    @torch.no_grad()
    def encode_images(self, x: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None):
        """Images in [-1, 1] -> scaled latents ``z = scaling_factor * E(x)`` (posterior mean unless ``sample``)."""
        dist = self.vae.encode(self._check_images(x)).latent_dist
        z = dist.sample(generator) if sample else dist.mean
        return z * self.scaling_factor

    @torch.no_grad()
    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images in [-1, 1] with ``image_channels`` channels."""
        x = self.vae.decode(z.to(self.device) / self.scaling_factor).sample.clamp(-1, 1)
        c = self.config.image_channels
        if x.shape[1] != c:
            x = x.mean(1, keepdim=True) if c == 1 else x.expand(-1, c, -1, -1)
        return x

    @torch.no_grad()
    def condition(self, x: torch.Tensor) -> torch.Tensor:
        """Conditioning tokens ``[B, N, D]`` of images in [-1, 1]."""
        return self.conditioner(x.to(self.device))

    def net(self) -> LatentUNet:
        return LatentUNet(self.unet, self.config.timestep_offset)

    def denoiser(self, guidance: float = 1.0):
        """The :class:`~latentmed.diffusion.Denoiser` over the (guided) UNet, in latent space."""
        from latentmed.diffusion import Denoiser

        return Denoiser(GuidedNet(self.net(), guidance), self.schedule, self.prediction)

    @torch.no_grad()
    def sample(self, tokens: torch.Tensor, steps: int = 50, guidance: float = 1.0,
               generator: torch.Generator | None = None, x_T: torch.Tensor | None = None, eta: float = 0.0,
               decode: bool = True) -> torch.Tensor:
        """DDIM-sample images (``decode=True``) or scaled latents conditioned on ``tokens``."""
        from latentmed.diffusion import ddim_sample, ddim_timesteps

        tokens = tokens.to(self.device, torch.float32)
        expect(tokens.ndim == 3 and tokens.shape[-1] == self.unet.config.cross_attention_dim,
               f"tokens must be [B, N, {self.unet.config.cross_attention_dim}], got {tuple(tokens.shape)}.")
        shape = (tokens.shape[0], self.config.latent_channels, self.config.latent_size, self.config.latent_size)
        if x_T is None:
            x_T = torch.randn(shape, generator=generator, device=self.device)
        z = ddim_sample(self.denoiser(guidance), x_T, ddim_timesteps(steps, schedule=self.schedule), cond=tokens,
                        eta=eta, generator=generator)
        return self.decode_latents(z) if decode else z

    def save(self, run_dir: str | os.PathLike) -> Path:
        """Write the RUN layout (see :mod:`latentmed.ldm`)."""
        run = Path(run_dir)
        run.mkdir(parents=True, exist_ok=True)
        self.vae.save_pretrained(str(run / "vae"))
        self.unet.save_pretrained(str(run / "unet"))
        self.conditioner.save_pretrained(run / "conditioner")
        write_json(run / LDM_JSON, asdict(self.config))
        return run


def load_ldm(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> LatentDiffusion:
    """Load ``RUN/{vae,unet,conditioner}`` and ``RUN/ldm.json`` (see :mod:`latentmed.ldm` for the layout)."""
    from diffusers import UNet2DConditionModel

    from latentmed.config import from_dict
    from latentmed.ldm.conditioner import conditioner_from_dir

    run = Path(run_dir)
    for part in ("vae", "unet", "conditioner", LDM_JSON):
        if not (run / part).exists():
            raise LatentmedError(f"{run}: not a DiNO-Diffusion run, {run / part} is missing. Expected vae/, unet/, "
                                 "conditioner/ and ldm.json written by `latentmed ldm train`.")
    raw = read_json(run / LDM_JSON)
    raw.setdefault("timestep_offset", 0.0)  # runs written before the offset existed were trained without it
    config = from_dict(LDMConfig, raw, where=str(run / LDM_JSON))
    unet = UNet2DConditionModel.from_pretrained(str(run / "unet"))
    return LatentDiffusion(load_vae(run / "vae"), unet, conditioner_from_dir(run / "conditioner"), config,
                           device=device)


def ldm_config_from(vae, unet, image_size: int, image_channels: int = 1, schedule: str = "linear",
                    prediction: str = "eps", cond_dropout: float = 0.1, **extra: Any) -> LDMConfig:
    """The :class:`LDMConfig` implied by a VAE and a UNet (``image_channels`` of the data, 1 = grayscale)."""
    return LDMConfig(schedule=schedule, prediction=prediction,
                     scaling_factor=float(getattr(vae.config, "scaling_factor", 1.0) or 1.0), image_size=image_size,
                     image_channels=int(image_channels),
                     latent_channels=int(unet.config.in_channels), latent_size=int(unet.config.sample_size),
                     cond_dropout=cond_dropout, extra=dict(extra))


def tiny_ldm(image_size: int = 32, conditioner=None, vae_channels=(16, 32), unet_channels=(16, 32),
             latent_channels: int = 4, seed: int = 0, **config: Any) -> LatentDiffusion:
    """A randomly initialised, small :class:`LatentDiffusion` (tests, code written against a RUN).

    ``tiny_ldm().save(RUN)`` gives a loadable RUN folder in well under a second.
    """
    from latentmed.ldm.conditioner import DinoConditioner

    torch.manual_seed(seed)
    cond = conditioner or DinoConditioner.tiny(image_size=min(image_size, 32), seed=seed)
    vae = build_vae(1, latent_channels, vae_channels, 1, norm_num_groups=min(16, vae_channels[0]),
                    image_size=image_size)
    f = vae_downsample_factor(vae)
    unet = build_unet(latent_channels, image_size // f, cond.width, unet_channels, 1,
                      norm_num_groups=min(16, unet_channels[0]), head_channels=min(32, unet_channels[0]))
    return LatentDiffusion(vae, unet, cond, ldm_config_from(vae, unet, image_size, **config))
