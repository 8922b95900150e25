"""What DiffSeg runs on: a DiNO-Diffusion run or a diffusers (e.g. Stable Diffusion) folder, and its empty context.

A RUN is either a DiNO-Diffusion run (``RUN/ldm.json`` from ``latentmed ldm train``: the UNet is
conditioned on the image's own DINO tokens) or a diffusers folder laid out like Stable Diffusion:
``unet/`` (required), ``vae/`` (required when the UNet takes latents), ``scheduler/`` (its
``alphas_cumprod`` become a :class:`~latentmed.diffusion.TabulatedSchedule`; timesteps are
diffusers' integers) and, when present, ``text_encoder/`` + ``tokenizer/``.

The empty ("vanilla") context of a diffusers folder is what google/diffseg feeds Stable Diffusion
(``third_party/keras_cv/stable_diffusion.py:195-214, 260-268``): the CLIP text encoder's output
for the empty prompt (BOS, EOS, padding to 77 tokens) -> ``[1, 77, 768]``. ``context=FILE``
(a ``.safetensors`` file with one tensor ``[tokens, D]`` or ``[1, tokens, D]``) replaces it. A
folder without a text encoder, and a DiNO-Diffusion run, use all-zero tokens: the UNet's
key/value projections have no bias (diffusers' default ``attention_bias=False``), so zero tokens
give zero keys and values and cross-attention adds only its output bias, exactly what an empty
context adds, whatever the token count (tested); for a DiNO-Diffusion run that is also the
condition classifier-free guidance trained it on (``cond_dropout``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from latentmed.data.notices import notify
from latentmed.errors import LatentmedError
from latentmed.segment.diffseg import DiffSeg, DiffSegConfig

SD_LAYOUT = ("unet/ (config.json + weights), vae/ when the UNet takes latents, optionally scheduler/, "
             "text_encoder/ + tokenizer/")


@dataclass
class Segmenter:
    """A :class:`DiffSeg` plus how to condition it and what images it takes.

    ``condition(x)``: tokens for images ``x`` (``None``: the empty context). ``context``: the
    empty context ``[1, tokens, D]`` (``None``: ``null_tokens`` zero tokens). ``image_size`` and
    ``image_channels``: the model's input, when images must be brought to it (a diffusers folder:
    ``unet.sample_size`` x the VAE's downsampling, the VAE's channels; resizing and grey -> RGB are
    announced as data notices); ``None`` reads images at their native size.
    """

    diffseg: DiffSeg
    condition: Callable[[torch.Tensor], torch.Tensor] | None = None
    source: str = ""
    null_tokens: int = 1
    context: torch.Tensor | None = None
    image_size: int | None = None
    image_channels: int = 1

    def __post_init__(self):
        if self.condition is None:
            self.condition = self.null_condition

    def null_condition(self, x: torch.Tensor) -> torch.Tensor:
        """The empty ("vanilla") context for a batch ``x`` (see the module docstring)."""
        if self.context is not None:
            return self.context.expand(x.shape[0], -1, -1)
        return torch.zeros(x.shape[0], self.null_tokens, self.diffseg.unet.config.cross_attention_dim)

    def untrained(self, seed: int = 0) -> "Segmenter":
        """The same pipeline on a freshly initialised UNet of the same architecture (a reference row)."""
        torch.manual_seed(seed)
        unet = type(self.diffseg.unet).from_config(self.diffseg.unet.config).eval()
        return replace(self, diffseg=replace(self.diffseg, unet=unet), source=f"untrained(seed={seed}):{self.source}")


def load_segmenter(run: str | os.PathLike, config: DiffSegConfig | None = None,
                   context: str | os.PathLike | None = None) -> Segmenter:
    """Load a DiNO-Diffusion run or a diffusers folder (see the module docstring) as a :class:`Segmenter`."""
    run = Path(run)
    config = config or DiffSegConfig()
    ctx = load_context(context) if context is not None else None
    if (run / "ldm.json").is_file():
        from latentmed.ldm.model import load_ldm, vae_downsample_factor

        ldm = load_ldm(run)
        # UNet input k; runs trained on 1000 t - 1 noise k at t = (k + 1) / T (diffusers' index), older ones at k / T
        indexing = "diffusers" if float(getattr(ldm.config, "timestep_offset", 0.0)) == 1.0 else "latentmed"
        ds = DiffSeg(ldm.unet, schedule=ldm.schedule, encode=ldm.encode_images, config=config,
                     latent_factor=vae_downsample_factor(ldm.vae), indexing=indexing)
        return Segmenter(ds, ldm.condition, source=f"ldm:{run}", null_tokens=ldm.conditioner.num_tokens,
                         context=ctx)  # images at their native size (the run checks it)
    if (run / "unet").is_dir():
        return _diffusers_segmenter(run, config, ctx)
    raise LatentmedError(f"{run}: expected a DiNO-Diffusion run (ldm.json, from `latentmed ldm train`) or a diffusers "
                         f"folder like Stable Diffusion's: {SD_LAYOUT}.")


def _diffusers_segmenter(run: Path, config: DiffSegConfig, context: torch.Tensor | None) -> Segmenter:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from latentmed.diffusion import LinearBetaSchedule, TabulatedSchedule

    unet = _from_pretrained(UNet2DConditionModel, run / "unet", "unet")
    if getattr(unet.config, "addition_embed_type", None) is not None:
        raise LatentmedError(f"{run}/unet needs extra conditioning (addition_embed_type="
                             f"{unet.config.addition_embed_type!r}, e.g. SDXL's pooled text and size embeddings), "
                             "which DiffSeg does not supply; use a Stable Diffusion 1.x/2.x-style folder.")
    vae = _from_pretrained(AutoencoderKL, run / "vae", "vae") if (run / "vae").is_dir() else None
    if vae is None and unet.config.in_channels not in (1, 3):
        raise LatentmedError(f"{run}: unet/ takes {unet.config.in_channels}-channel latents but there is no vae/ "
                             f"folder; copy the model's vae/ (config.json + weights) next to unet/ ({SD_LAYOUT}).")
    if (run / "scheduler").is_dir():
        schedule = TabulatedSchedule.from_diffusers(run / "scheduler")
    else:
        schedule = LinearBetaSchedule(num_steps=config.num_train_timesteps)
        notify(None, f"{run} has no scheduler/: using DDPM's linear betas (only the --noised ablation uses them).")
    if context is None:
        context = empty_prompt_context(run)
    ds = DiffSeg.from_vae(unet, vae, schedule=schedule, config=config, indexing="diffusers")
    size = int(unet.config.sample_size) * ds.latent_factor
    channels = int(vae.config.in_channels if vae is not None else unet.config.in_channels)
    return Segmenter(ds, None, source=f"diffusers:{run}", context=context, image_size=size, image_channels=channels)


def _from_pretrained(klass, folder: Path, part: str):
    try:
        obj = klass.from_pretrained(str(folder))
        return obj.eval() if isinstance(obj, torch.nn.Module) else obj
    except (OSError, ValueError, EnvironmentError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LatentmedError(f"cannot load {part}/ from {folder}: {first} (expected config.json + "
                             f"*.safetensors as saved by diffusers' save_pretrained).") from exc


@torch.no_grad()
def empty_prompt_context(run: str | os.PathLike) -> torch.Tensor | None:
    """The folder's CLIP text encoding of the empty prompt ``[1, max_length, D]``; ``None`` without a text encoder.

    Tokens: the tokenizer's ``""`` padded to its ``model_max_length`` (BOS, EOS, padding), as
    diffusers' ``StableDiffusionPipeline.encode_prompt`` and google/diffseg's ``_UNCONDITIONAL_TOKENS``.
    """
    from transformers import CLIPTextModel, CLIPTokenizer

    run = Path(run)
    has_enc, has_tok = (run / "text_encoder").is_dir(), (run / "tokenizer").is_dir()
    if not has_enc and not has_tok:
        notify(None, f"{run} has no text_encoder/ + tokenizer/: the empty context is zero tokens, not CLIP's "
                     "empty prompt; pass --context FILE.safetensors to give one.")
        return None
    if has_enc != has_tok:
        missing = "tokenizer/" if has_enc else "text_encoder/"
        raise LatentmedError(f"{run}: {missing} is missing (the empty-prompt context needs text_encoder/ and "
                             "tokenizer/); copy it from the model, or pass --context FILE.safetensors.")
    tokenizer = _from_pretrained(CLIPTokenizer, run / "tokenizer", "tokenizer")
    encoder = _from_pretrained(CLIPTextModel, run / "text_encoder", "text_encoder")
    ids = tokenizer("", padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return encoder(ids)[0].float()


def load_context(path: str | os.PathLike) -> torch.Tensor:
    """A context tensor from a ``.safetensors`` file (key ``context`` or its only tensor) -> ``[1, tokens, D]``."""
    from latentmed.io import load_safetensors

    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        raise LatentmedError(f"--context {path}: expected an existing .safetensors file holding one tensor "
                             "[tokens, D] or [1, tokens, D] (e.g. a CLIP text encoding).")
    tensors = load_safetensors(path)
    if "context" not in tensors and len(tensors) != 1:
        raise LatentmedError(f"--context {path}: holds {sorted(tensors)}; expected one tensor or one named 'context'.")
    ctx = tensors.get("context", next(iter(tensors.values()))).float()
    ctx = ctx[None] if ctx.ndim == 2 else ctx
    if ctx.ndim != 3 or ctx.shape[0] != 1:
        raise LatentmedError(f"--context {path}: tensor of shape {tuple(ctx.shape)}; expected [tokens, D] or "
                             "[1, tokens, D].")
    return ctx
