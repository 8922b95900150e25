"""Training the VAE and the token-conditioned UNet with the shared loop (:func:`latentmed.train.train`).

- VAE objective: per-sample L1 reconstruction + ``kl_weight`` * KL(q(z|x) || N(0, I)) (LDM's
  KL-regularised autoencoder, Rombach et al. 2022, without the adversarial/perceptual terms).
- The scaling factor is 1 / std of the latents over the training images (LDM Sec. 4.3.2).
- UNet objective: per-sample MSE to the ``eps`` (or ``v``) target at t ~ U(0, 1], with the
  condition replaced by zero tokens with probability ``cond_dropout`` (classifier-free guidance).
- Checkpoint selection (DiNO-Diffusion Sec. 3): every ``fid_every`` steps, FID between held-out
  images and their reconstructions (sampled from their own tokens) with a pluggable feature
  extractor; the best EMA UNet is kept and recorded in ``RUN/ldm.json``. The held-out images
  must be a validation split of the (unlabelled) training pool, never the test set: the folder
  is recorded as ``extra.selection_data`` and :func:`latentmed.ldm.augment.augment_eval`
  refuses a run whose selection saw its test folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from latentmed.errors import LatentmedError, expect
from latentmed.io import load_safetensors, save_safetensors
from latentmed.runtime import seed_everything
from latentmed.train import TrainConfig, train


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
    """``loss_fn(model, batch) -> (L1 + kl_weight * KL)[B]`` for :func:`latentmed.train.train`."""

    def loss_fn(model, batch):
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
class VAETrainSpec:
    """VAE architecture and objective for ``latentmed ldm train-vae``."""

    image_size: int = 64
    image_channels: int = 1
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    kl_weight: float = 1e-6
    augment: bool = False
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=500, batch_size=16, lr=1e-3,
                                                                   ema_decay=0.99, checkpoint_every=250))


def train_vae(data: str | os.PathLike, out_dir: str | os.PathLike, spec: VAETrainSpec | None = None):
    """Train an AutoencoderKL on ``data`` (folder or shards); writes ``out_dir/vae`` with the scaling factor."""
    from latentmed.ldm.data import LDMImageDataset
    from latentmed.ldm.model import build_vae

    spec = spec or VAETrainSpec()
    ds = LDMImageDataset(data, size=spec.image_size, channels=spec.image_channels, augment=spec.augment)
    seed_everything(spec.train.seed)  # same seed, same initial weights
    vae = build_vae(spec.image_channels, spec.latent_channels, spec.block_out_channels, spec.layers_per_block,
                    image_size=spec.image_size)
    out = Path(out_dir)
    res = train(VAEModule(vae), vae_loss(spec.kl_weight), ds, spec.train, out, save_model=False)
    final = res.ema_model.vae.eval()
    sample = ds.stack(range(min(len(ds), 512)))
    final.register_to_config(scaling_factor=compute_scaling_factor(final, sample))
    final.save_pretrained(str(out / "vae"))
    return final


# ---- UNet ------------------------------------------------------------------------------------------------------
def ldm_loss(vae, conditioner, schedule, prediction: str, scaling_factor: float, cond_dropout: float = 0.1,
             sample_posterior: bool = True) -> Callable:
    """``loss_fn(model, batch)``: ``model`` is a :class:`~latentmed.ldm.model.UNetNet` (trained);
    the VAE and conditioner are frozen and moved to the batch's device on first use."""
    from latentmed.diffusion import diffusion_loss, sample_times

    def loss_fn(model, batch):
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
        t = sample_times(x.shape[0], "uniform", device=x.device)
        return diffusion_loss(model, z0, t, schedule, prediction, cond=tokens)

    return loss_fn


@dataclass
class LDMTrainSpec:
    """UNet architecture, objective and checkpoint selection for ``latentmed ldm train``."""

    image_size: int = 64
    image_channels: int = 1
    block_out_channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 1
    head_channels: int = 32
    attention_head_dim: int | None = None  # legacy: diffusers' head COUNT (older specs); overrides head_channels
    schedule: str = "linear"
    prediction: str = "eps"
    cond_dropout: float = 0.1
    augment: bool = False
    fid_every: int = 0
    fid_images: int = 64
    fid_steps: int = 20
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1000, batch_size=16, lr=2e-4,
                                                                   ema_decay=0.995, checkpoint_every=500))


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


def train_ldm(data: str | os.PathLike, vae_dir: str | os.PathLike, conditioner, run_dir: str | os.PathLike,
              spec: LDMTrainSpec | None = None, *, embeddings: str | os.PathLike | None = None,
              heldout: str | os.PathLike | None = None, fid_extractor: Callable | None = None):
    """Train the token-conditioned UNet; writes the full RUN layout (see :mod:`latentmed.ldm`).

    ``embeddings``: cache from :func:`save_embeddings` (else tokens are computed every step). With
    ``spec.augment`` the cached tokens are those of the un-augmented image (the UNet then learns
    small geometric variations around its condition); without a cache they follow the augmentation.
    ``heldout`` + ``spec.fid_every``: reconstruction-FID checkpoint selection; ``fid_extractor``
    maps images to features (default: the conditioner's CLS token).
    """
    from latentmed.ldm.data import LDMImageDataset
    from latentmed.ldm.model import LatentDiffusion, UNetNet, build_unet, check_token_width, ldm_config_from, load_vae

    spec = spec or LDMTrainSpec()
    vae = load_vae(vae_dir)
    from latentmed.diffusion import check_prediction, get_schedule

    schedule, prediction = get_schedule(spec.schedule), check_prediction(spec.prediction)
    tokens = None
    ds0 = LDMImageDataset(data, size=spec.image_size, channels=spec.image_channels)
    if embeddings is not None:
        tokens = load_embeddings(embeddings, conditioner, ds0.keys)
    ds = LDMImageDataset(data, size=spec.image_size, channels=spec.image_channels, augment=spec.augment, tokens=tokens)
    f = 2 ** (len(vae.config.block_out_channels) - 1)
    expect(spec.image_size % f == 0, f"image_size {spec.image_size} is not divisible by the VAE's factor {f}.")
    seed_everything(spec.train.seed)
    unet = build_unet(vae.config.latent_channels, spec.image_size // f, conditioner.width, spec.block_out_channels,
                      spec.layers_per_block, spec.attention_head_dim, head_channels=spec.head_channels)
    check_token_width(unet, conditioner)
    sf = float(vae.config.scaling_factor)
    run = Path(run_dir)
    cfg = ldm_config_from(vae, unet, spec.image_size, spec.image_channels, spec.schedule, prediction,
                          spec.cond_dropout)
    preview = None
    best = {"fid": float("inf"), "step": None}
    if heldout is not None and spec.fid_every > 0:
        held = LDMImageDataset(heldout, size=spec.image_size, channels=spec.image_channels)
        real = held.stack(range(min(len(held), spec.fid_images)))
        extractor = fid_extractor or (lambda x: conditioner(x)[:, 0])

        def preview(ema_model, step, out_dir):
            ldm = LatentDiffusion(vae, unwrap_unet(ema_model), conditioner, cfg,
                                  device=next(ema_model.parameters()).device)
            fid = reconstruction_fid(ldm, real, extractor, steps=spec.fid_steps)
            ema_model.unet.train()
            if fid < best["fid"]:
                best.update(fid=fid, step=step)
                ema_model.unet.save_pretrained(str(Path(out_dir) / "best_unet"))
            with open(Path(out_dir) / "fid.csv", "a") as fh:
                fh.write(f"{step},{fid:.6f}\n")

        spec.train.preview_every = spec.fid_every

    res = train(UNetNet(unet), ldm_loss(vae, conditioner, schedule, prediction, sf, spec.cond_dropout), ds,
                spec.train, run, preview_fn=preview, save_model=False)
    final_unet = res.ema_model.unet
    if best["step"] is not None:
        from diffusers import UNet2DConditionModel

        final_unet = UNet2DConditionModel.from_pretrained(str(run / "best_unet"))
        cfg.extra.update(best_fid=best["fid"], best_step=best["step"], fid_extractor="custom" if fid_extractor
                         else "conditioner CLS", selection_data=str(Path(heldout).resolve()))
    cfg.extra.update(steps=res.step, embeddings=str(embeddings) if embeddings else None,
                     train_data=str(Path(data).resolve()),
                     conditioner=getattr(conditioner, "label", type(conditioner).__name__))
    ldm = LatentDiffusion(vae, final_unet, conditioner, cfg)
    ldm.save(run)
    return ldm


def unwrap_unet(ema_model):
    """The diffusers UNet inside a (possibly wrapped) :class:`UNetNet`."""
    from latentmed.train import unwrap

    return unwrap(ema_model).unet


@torch.no_grad()
def reconstruction_fid(ldm, images: torch.Tensor, extractor: Callable, steps: int = 20, guidance: float = 1.0,
                       seed: int = 0, batch_size: int = 32) -> float:
    """FID between ``images`` and their reconstructions from their own tokens (lower is better)."""
    from latentmed.metrics.image import FID

    fid = FID(extractor, batch_size=batch_size)
    g = torch.Generator().manual_seed(seed)
    for chunk in images.split(batch_size):
        rec = ldm.sample(ldm.condition(chunk), steps=steps, guidance=guidance, generator=g)
        fid.update(chunk, real=True)
        fid.update(rec, real=False)
    return float(fid.compute())
