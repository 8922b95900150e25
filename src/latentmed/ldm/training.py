"""Training the VAE and the token-conditioned UNet with the shared loop (:func:`latentmed.train.train`).

- VAE objective: per-sample L1 reconstruction + ``kl_weight`` * KL(q(z|x) || N(0, I)) (LDM's
  KL-regularised autoencoder, Rombach et al. 2022, without the adversarial/perceptual terms).
- The scaling factor is 1 / std of the latents over the training images (LDM Sec. 4.3.2).
- UNet objective: per-sample MSE to the ``eps`` (or ``v``) target at t ~ U(0, 1], with the
  condition replaced by zero tokens with probability ``cond_dropout`` (classifier-free guidance).
- Checkpoint selection (DiNO-Diffusion Sec. 3): every ``train.eval_every`` steps the loop's
  ``eval_fn`` computes the FID between held-out images (``eval.heldout``) and their
  reconstructions (sampled from their own tokens) with a pluggable feature extractor; the loop
  keeps the best EMA UNet (``RUN/best/``) and it is recorded in ``RUN/ldm.json``. The held-out
  images must be a validation split of the (unlabelled) training pool, never the test set: the
  folder is recorded as ``extra.selection_data`` and :func:`latentmed.ldm.augment.augment_eval`
  refuses a run whose selection saw its test folder.

Both runs follow the one run-config shape (``model``, ``objective``, ``train``, ``data``; LDM
adds ``eval``), saved as ``config.yaml`` in the output folder (:func:`latentmed.config.save_run_config`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from latentmed.config import RunConfig, save_run_config
from latentmed.errors import LatentmedError, expect
from latentmed.io import load_safetensors, save_safetensors
from latentmed.runtime import seed_everything
from latentmed.train import RunResult, TrainConfig, train
from latentmed.train.runlock import check_run_dir


@dataclass
class LDMDataConfig:
    """The training images (a folder or tar shards :func:`~latentmed.ldm.data.open_ldm_images` reads)."""

    path: str = ""
    size: int = 64  # image side after centre crop + resize
    channels: int = 1  # 1 grayscale, 3 RGB
    augment: bool = False  # light augmentation (DiNO-Diffusion Sec. 3)


# ---- VAE -------------------------------------------------------------------------------------------------------
class VAEModule(nn.Module):
    """Training wrapper: ``forward(x) -> (reconstruction, KL per sample)``; saves the inner AutoencoderKL."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor):
        dist = self.vae.encode(x).latent_dist
        z = dist.mean + dist.std * torch.randn_like(dist.mean)
        return self.vae.decode(z).sample, dist.kl()

    def save_pretrained(self, directory, state_dict=None):
        if state_dict is not None:
            self.vae.load_state_dict({k.removeprefix("vae."): v for k, v in state_dict.items()})
        self.vae.save_pretrained(str(directory))


def vae_loss(kl_weight: float = 1e-6) -> Callable:
    """``objective(model, batch, step) -> (L1 + kl_weight * KL)[B]`` for :func:`latentmed.train.train`."""

    def loss_fn(model, batch, step: int):
        x = batch["image"]
        recon, kl = model(x)
        rec = (recon - x).abs().flatten(1).mean(1)
        return rec + kl_weight * kl, {"recon_l1": float(rec.detach().mean()), "kl": float(kl.detach().mean())}

    return loss_fn


@torch.no_grad()
def compute_scaling_factor(vae, images: torch.Tensor, batch_size: int = 64) -> float:
    """1 / std of the VAE posterior means of ``images`` (LDM's latent rescaling)."""
    vae = vae.eval()
    dev = next(vae.parameters()).device
    zs = [vae.encode(chunk.to(dev)).latent_dist.mean.cpu() for chunk in images.split(batch_size)]
    std = torch.cat(zs).float().std().item()
    expect(std > 0, "latents have zero variance: the VAE collapsed; train it longer or lower kl_weight.")
    return 1.0 / std


@dataclass
class VAEModelConfig:
    """The AutoencoderKL (:func:`~latentmed.ldm.model.build_vae`); downsampling 2^(len(block_out_channels) - 1)."""

    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1


@dataclass
class VAEObjectiveConfig:
    """Weight of the KL term of :func:`vae_loss`."""

    kl_weight: float = 1e-6


@dataclass
class VAETrainConfig(TrainConfig):
    """:class:`TrainConfig` with the VAE's defaults (short CPU runs)."""

    steps: int = 500
    batch_size: int = 16
    lr: float = 1e-3
    ema_decay: float = 0.99
    checkpoint_every: int = 250


@dataclass
class VAERunConfig(RunConfig):
    """Everything ``latentmed ldm train-vae`` needs; YAML sections mirror the fields."""

    how_to_make = "latentmed ldm train-vae"

    model: VAEModelConfig = field(default_factory=VAEModelConfig)
    objective: VAEObjectiveConfig = field(default_factory=VAEObjectiveConfig)
    train: VAETrainConfig = field(default_factory=VAETrainConfig)
    data: LDMDataConfig = field(default_factory=LDMDataConfig)


def _check_data(data: LDMDataConfig) -> str:
    if not data.path:
        raise LatentmedError("no training data: set data.path in the config or give the DATA argument.")
    return data.path


def train_vae(cfg: VAERunConfig, out_dir: str | os.PathLike) -> RunResult:
    """Train an AutoencoderKL on ``cfg.data.path`` (folder or shards); writes ``out_dir/vae`` with the
    scaling factor and ``out_dir/config.yaml``; the result's ``model`` is the AutoencoderKL."""
    from latentmed.ldm.data import open_ldm_images
    from latentmed.ldm.model import build_vae

    check_run_dir(out_dir)  # a file, or a run another process is training: refused before any work
    d, m = cfg.data, cfg.model
    ds = open_ldm_images(_check_data(d), size=d.size, channels=d.channels, augment=d.augment)
    seed_everything(cfg.train.seed)  # same seed, same initial weights
    vae = build_vae(d.channels, m.latent_channels, m.block_out_channels, m.layers_per_block,
                    image_size=d.size)
    out = Path(out_dir)
    save_run_config(cfg, out)
    res = train(VAEModule(vae), vae_loss(cfg.objective.kl_weight), ds, cfg.train, out, save_model=False)
    final = res.ema_model.vae.eval()
    sample = ds.stack(range(min(len(ds), 512)))
    final.register_to_config(scaling_factor=compute_scaling_factor(final, sample))
    final.save_pretrained(str(out / "vae"))
    return RunResult(run_dir=out, model=final, step=res.step)


# ---- UNet ------------------------------------------------------------------------------------------------------
def ldm_loss(vae, conditioner, schedule, prediction: str, scaling_factor: float, cond_dropout: float = 0.1,
             sample_posterior: bool = True, time_sampling: str = "uniform") -> Callable:
    """``objective(model, batch, step)``: ``model`` is a :class:`~latentmed.ldm.model.LatentUNet` (trained);
    the VAE and conditioner are frozen and moved to the batch's device on first use. ``time_sampling``:
    ``uniform`` t in (0, 1], or ``discrete`` t = (k + 1) / 1000 with k uniform in 0..999 (diffusers' training)."""
    from latentmed.diffusion import diffusion_loss, sample_times

    def loss_fn(model, batch, step: int):
        x = batch["image"]
        if next(vae.parameters()).device != x.device:
            vae.to(x.device)
            conditioner.to(x.device)
        with torch.no_grad():
            xv = x.expand(-1, vae.config.in_channels, -1, -1) if x.shape[1] == 1 else x
            dist = vae.encode(xv).latent_dist
            z0 = (dist.mean + dist.std * torch.randn_like(dist.std) if sample_posterior else dist.mean) \
                * scaling_factor
            tokens = batch["tokens"].float() if "tokens" in batch else conditioner(x)
            if cond_dropout > 0:
                keep = (torch.rand(x.shape[0], device=x.device) >= cond_dropout).float()
                tokens = tokens * keep[:, None, None]
        t = sample_times(x.shape[0], time_sampling, device=x.device)
        return diffusion_loss(model, z0, t, schedule, prediction, cond=tokens)

    return loss_fn


@dataclass
class LDMUNetConfig:
    """The token-conditioned UNet (:func:`~latentmed.ldm.model.build_unet`); its latent size and
    channels follow the VAE, its cross-attention width the conditioner."""

    block_out_channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 1
    head_channels: int = 32
    attention_head_dim: int | None = None  # legacy: diffusers' head COUNT (older configs); overrides head_channels


@dataclass
class LDMObjectiveConfig:
    """Diffusion in the VAE's latent space (:func:`ldm_loss`): schedule, prediction, condition dropout."""

    schedule: str = "linear"
    prediction: str = "eps"
    cond_dropout: float = 0.1
    time_sampling: str = "uniform"  # or "discrete": the 1000 training steps of DDPM / diffusers

    def __post_init__(self) -> None:
        expect(self.time_sampling in ("uniform", "discrete"),
               f"objective.time_sampling must be 'uniform' or 'discrete', got {self.time_sampling!r}.")


@dataclass
class LDMTrainConfig(TrainConfig):
    """:class:`TrainConfig` with the UNet's defaults; checkpoint selection by the lowest ``fid``
    every ``eval_every`` steps (0: off) on ``eval.heldout``."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 2e-4
    ema_decay: float = 0.995
    checkpoint_every: int = 500
    select_metric: str = "fid"


@dataclass
class FIDSelectionConfig:
    """Reconstruction-FID checkpoint selection: held-out images (a validation split of the training
    pool, never the test set), how many, and DDIM steps per reconstruction."""

    heldout: str = ""
    images: int = 64
    steps: int = 20


@dataclass
class LDMRunConfig(RunConfig):
    """Everything ``latentmed ldm train`` needs besides the VAE and the conditioner; YAML sections mirror the fields."""

    how_to_make = "latentmed ldm train"

    model: LDMUNetConfig = field(default_factory=LDMUNetConfig)
    objective: LDMObjectiveConfig = field(default_factory=LDMObjectiveConfig)
    train: LDMTrainConfig = field(default_factory=LDMTrainConfig)
    data: LDMDataConfig = field(default_factory=LDMDataConfig)
    eval: FIDSelectionConfig = field(default_factory=FIDSelectionConfig)


#: Named training recipes: ``{name: {"section.key": value}}``, applied over the defaults (:func:`ldm_recipe`).
#: ``paper``: DiNO-Diffusion Sec. 3 as the issue's review read it: constant learning rate 1e-4 after a
#: 1000-step linear warm-up (the loop's schedule), light augmentation (sharpening, affine;
#: :func:`~latentmed.ldm.data.augment`) and DDPM's 1000 discrete training steps (diffusers' training).
LDM_RECIPES: dict[str, dict[str, Any]] = {
    "paper": {"train.lr": 1e-4, "train.warmup_steps": 1000, "data.augment": True,
              "objective.time_sampling": "discrete"},
}


def ldm_recipe(name: str) -> dict[str, Any]:
    """The ``{"section.key": value}`` settings of a named recipe (:data:`LDM_RECIPES`)."""
    expect(name in LDM_RECIPES, f"unknown LDM recipe {name!r}; expected one of {', '.join(LDM_RECIPES)}.")
    return dict(LDM_RECIPES[name])


def apply_recipe(cfg: LDMRunConfig, name: str) -> LDMRunConfig:
    """A copy of ``cfg`` with the recipe's settings (the experiment script's way; the CLI merges them as
    ``--set`` values, below its explicit options)."""
    from dataclasses import replace

    out = cfg
    for key, value in ldm_recipe(name).items():
        section, attr = key.split(".")
        out = replace(out, **{section: replace(getattr(out, section), **{attr: value})})
    return out


def embed_dataset(conditioner, dataset, batch_size: int = 64, progress: bool = False) -> torch.Tensor:
    """Conditioning tokens ``[N, T, D]`` of every image of ``dataset`` (no augmentation)."""
    idx = list(range(len(dataset)))
    out = []
    chunks = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc="embed", unit="batch")
    for c in chunks:
        out.append(conditioner(dataset.stack(c)).cpu())
    return torch.cat(out)


def embed_folder(data: str | os.PathLike, out: str | os.PathLike, conditioner, *, tokens: str = "global",
                 size: int = 64, batch_size: int = 64, progress: bool = False) -> tuple[torch.Tensor, str]:
    """Embed every image of ``data`` with ``conditioner`` (an object, or a source for
    :func:`~latentmed.ldm.conditioner.load_conditioner` with ``tokens``) and write the cache ``out``
    (:func:`save_embeddings`); return the tokens ``[N, T, D]`` and the conditioner's source."""
    from latentmed.ldm.data import open_ldm_images

    cond = _conditioner(conditioner, tokens)
    ds = open_ldm_images(data, size=size)
    tok = embed_dataset(cond, ds, batch_size, progress=progress)
    save_embeddings(out, tok, cond, ds.ids)
    return tok, getattr(cond, "source", type(cond).__name__)


def _conditioner(conditioner, tokens: str = "global"):
    """A conditioner object as given, or loaded from a source (a local ViT folder, ``tiny``...)."""
    if isinstance(conditioner, (str, os.PathLike)):
        from latentmed.ldm.conditioner import load_conditioner

        return load_conditioner(str(conditioner), tokens)
    return conditioner


def save_embeddings(path: str | os.PathLike, tokens: torch.Tensor, conditioner, keys: list[str]) -> Path:
    """Embedding cache: ``tokens`` + which conditioner made them + the image keys (safetensors metadata)."""
    import json

    return save_safetensors(path, {"tokens": tokens}, metadata={"conditioner_id": conditioner.conditioner_id,
                                                               "conditioner": json.dumps(conditioner.describe()),
                                                               "keys": json.dumps(keys)})


def load_embeddings(path: str | os.PathLike, conditioner=None, keys: list[str] | None = None) -> torch.Tensor:
    """Read a cache written by :func:`save_embeddings`, checking it matches the conditioner and images."""
    import json

    from safetensors import safe_open

    path = Path(path)
    tokens = load_safetensors(path)["tokens"]
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata() or {}
    if conditioner is not None and meta.get("conditioner_id") != conditioner.conditioner_id:
        raise LatentmedError(f"{path}: embeddings were made by conditioner {meta.get('conditioner_id')}, not by "
                             f"{conditioner.conditioner_id}; recompute them with `latentmed ldm embed`.")
    if keys is not None and json.loads(meta.get("keys", "[]")) != list(keys):
        raise LatentmedError(f"{path}: embeddings belong to other images than the data set; recompute them with "
                             "`latentmed ldm embed`.")
    return tokens


def train_ldm(cfg: LDMRunConfig, run_dir: str | os.PathLike, *, vae: str | os.PathLike, conditioner,
              tokens: str = "global", embeddings: str | os.PathLike | None = None,
              fid_extractor: Callable | None = None) -> RunResult:
    """Train the token-conditioned UNet on ``cfg.data.path``; writes the full RUN layout (see :mod:`latentmed.ldm`)
    and ``RUN/config.yaml``; the result's ``model`` is the :class:`~latentmed.ldm.model.LatentDiffusion`.

    ``vae``: a VAE folder (:func:`~latentmed.ldm.model.load_vae`); ``conditioner``: an object, or a
    source for :func:`~latentmed.ldm.conditioner.load_conditioner` with ``tokens``; ``embeddings``: cache from
    :func:`save_embeddings` (else tokens are computed every step). With ``data.augment`` the cached
    tokens are those of the un-augmented image (the UNet then learns small geometric variations
    around its condition); without a cache they follow the augmentation. ``eval.heldout`` +
    ``train.eval_every``: reconstruction-FID checkpoint selection; ``fid_extractor`` maps images to
    features (default: the conditioner's CLS token).
    """
    from latentmed.diffusion import check_prediction, get_schedule
    from latentmed.ldm.data import open_ldm_images
    from latentmed.ldm.model import (LatentDiffusion, LatentUNet, build_unet, check_token_width, ldm_config_from,
                                     load_vae)

    if cfg.train.eval_every and not cfg.eval.heldout:
        raise LatentmedError(f"train.eval_every={cfg.train.eval_every} selects checkpoints by reconstruction FID on "
                             "held-out images: give --heldout DIR (eval.heldout), or set train.eval_every=0.")
    check_run_dir(run_dir)  # a file, or a run another process is training: refused before any work
    vae_model = load_vae(vae)
    conditioner = _conditioner(conditioner, tokens)
    d, m, o = cfg.data, cfg.model, cfg.objective
    schedule, prediction = get_schedule(o.schedule), check_prediction(o.prediction)
    tokens = None
    ds0 = open_ldm_images(_check_data(d), size=d.size, channels=d.channels)
    if embeddings is not None:
        tokens = load_embeddings(embeddings, conditioner, ds0.ids)
    ds = open_ldm_images(d.path, size=d.size, channels=d.channels, augment=d.augment, tokens=tokens)
    f = 2 ** (len(vae_model.config.block_out_channels) - 1)
    expect(d.size % f == 0, f"data.size {d.size} is not divisible by the VAE's factor {f}.")
    seed_everything(cfg.train.seed)
    unet = build_unet(vae_model.config.latent_channels, d.size // f, conditioner.width, m.block_out_channels,
                      m.layers_per_block, m.attention_head_dim, head_channels=m.head_channels)
    check_token_width(unet, conditioner)
    sf = float(vae_model.config.scaling_factor)
    run = Path(run_dir)
    ldm_cfg = ldm_config_from(vae_model, unet, d.size, d.channels, o.schedule, prediction, o.cond_dropout)
    eval_fn = None
    if cfg.train.eval_every:
        held = open_ldm_images(cfg.eval.heldout, size=d.size, channels=d.channels)
        real = held.stack(range(min(len(held), cfg.eval.images)))
        eval_fn = _fid_eval(vae_model, conditioner, ldm_cfg, real, fid_extractor, cfg.eval.steps)
    save_run_config(cfg, run)
    res = train(LatentUNet(unet, ldm_cfg.timestep_offset), ldm_loss(vae_model, conditioner, schedule, prediction, sf, o.cond_dropout,
                                                              time_sampling=o.time_sampling), ds,
                cfg.train, run, eval_fn=eval_fn, save_model=False)
    final_unet = res.ema_model.unet
    if res.best is not None:
        from diffusers import UNet2DConditionModel

        final_unet = UNet2DConditionModel.from_pretrained(str(run / "best"))
        ldm_cfg.extra.update({f"best_{res.best['metric']}": res.best["value"], "best_step": res.best["step"],
                              "fid_extractor": "custom" if fid_extractor else "conditioner CLS",
                              "selection_data": str(Path(cfg.eval.heldout).resolve())})
    ldm_cfg.extra.update(steps=res.step, embeddings=str(embeddings) if embeddings else None,
                         train_data=str(Path(d.path).resolve()),
                         conditioner=getattr(conditioner, "label", type(conditioner).__name__))
    ldm = LatentDiffusion(vae_model, final_unet, conditioner, ldm_cfg)
    ldm.save(run)
    return RunResult(run_dir=run, model=ldm, step=res.step)


def _fid_eval(vae, conditioner, ldm_cfg, real: torch.Tensor, extractor: Callable | None, steps: int) -> Callable:
    """``eval_fn(ema_model, step) -> {"fid": ...}`` for the training loop: reconstruction FID of ``real``."""
    from latentmed.ldm.model import LatentDiffusion

    extractor = extractor or (lambda x: conditioner(x)[:, 0])

    def eval_fn(ema_model, step: int) -> dict[str, float]:
        ldm = LatentDiffusion(vae, ema_model.unet, conditioner, ldm_cfg, device=next(ema_model.parameters()).device)
        return {"fid": reconstruction_fid(ldm, real, extractor, steps=steps)}

    return eval_fn


@torch.no_grad()
def reconstruction_fid(ldm, images: torch.Tensor, extractor: Callable, steps: int = 20, guidance: float = 1.0,
                       seed: int = 0, batch_size: int = 32) -> float:
    """FID between ``images`` and their reconstructions from their own tokens (lower is better)."""
    from latentmed.metrics.fid import FID

    fid = FID(extractor, batch_size=batch_size)
    g = torch.Generator().manual_seed(seed)
    for chunk in images.split(batch_size):
        rec = ldm.sample(ldm.condition(chunk), steps=steps, guidance=guidance, generator=g)
        fid.update(chunk, real=True)
        fid.update(rec, real=False)
    return float(fid.compute())
