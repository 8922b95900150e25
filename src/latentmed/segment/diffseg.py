"""Zero-shot segmentation with a diffusion UNet's self-attention (DiffSeg, Tian et al. 2024).

One UNet pass on the image's CLEAN latent ``z_0`` with the time embedding of timestep ``t``
(DiffSeg: t=300 of 1000; the reference code, google/diffseg, adds no noise: only the UNet's
time input says t), self-attention recorded (:mod:`.capture`), aggregated over heads, blocks and resolutions
(:mod:`.aggregate`), merged into proposals and turned into a label map (:mod:`.merge`).
Works with any diffusers ``UNet2DConditionModel``; a VAE (``AutoencoderKL``) maps images to
latents, or ``vae=None`` for a pixel-space UNet. The DiNO-Diffusion paper (Sec. 4.4, Figs 11-12)
finds a merge threshold near 0.05 and t in 100-500 best on chest radiographs.

``noised=True`` instead feeds ``z_t = alpha(t) z_0 + sigma(t) eps`` (seeded eps), an ablation.
``num_segments=K`` merges the closest proposals until K remain (:func:`merge_attention`), so that
methods are compared at the same, small number of segments.

Thresholds and bin counts: the symmetric KL between two maps grows with the number of bins they
spread over and with their sharpness, so a threshold does not transfer between the reference
(64x64 = 4096 bins, fp16, Stable Diffusion; tau ~ 1.1) and our 16x16 latents (256 bins) or 8x8
(64 bins). ``threshold_quantile=q`` calibrates per image instead: the threshold is the
``q``-quantile of the pairwise symmetric KL between the anchors' maps (:func:`calibrated_threshold`),
which is independent of the bin count.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import torch

from latentmed.errors import LatentmedError
from latentmed.segment.aggregate import aggregate_attention
from latentmed.segment.capture import capture_self_attention, self_attention_modules
from latentmed.segment.merge import MergeResult, calibrated_threshold, segment_attention


@dataclass
class DiffSegConfig:
    """DiffSeg parameters. ``threshold`` is one symmetric-KL threshold or one per iteration.

    ``merge`` (``reference`` | ``greedy``) and ``kl_fp16`` choose the merge rule
    (:mod:`latentmed.segment.merge`); :data:`REFERENCE_RECIPE` holds google/diffseg's benchmark settings.
    """

    timestep: int = 300
    num_train_timesteps: int = 1000
    threshold: float | tuple[float, ...] = 0.05
    iterations: int = 3
    grid: int = 16
    refine: bool = False
    weighting: str = "proportional"
    store_float16: bool = False
    seed: int = 0
    batch_size: int = 4
    noised: bool = False
    num_segments: int | None = None
    threshold_quantile: float | None = None
    merge: str = "reference"
    kl_fp16: bool = False


#: google/diffseg's benchmark (``benchmarks.ipynb``: ``KL_THRESHOLD = [1.1]*3``, ``NUM_POINTS = 16``,
#: ``REFINEMENT = False``, ``timestep=300``; ``segmentor.py:98`` fp16 KL; ``segmentor.py:103-117`` grouping).
REFERENCE_RECIPE = {"timestep": 300, "threshold": 1.1, "iterations": 3, "grid": 16, "refine": False,
                    "weighting": "proportional", "merge": "reference", "kl_fp16": True, "noised": False,
                    "num_segments": None, "threshold_quantile": None}
INDEXINGS = ("latentmed", "diffusers")
RECIPES = {"latentmed": {}, "reference": REFERENCE_RECIPE}


def diffseg_config(recipe: str = "latentmed", **given) -> DiffSegConfig:
    """A config from a recipe's settings with ``given`` ones on top (``None`` = not given): an explicit
    option beats the recipe, the recipe beats :class:`DiffSegConfig`'s defaults."""
    if recipe not in RECIPES:
        raise LatentmedError(f"recipe {recipe!r}: expected one of {', '.join(RECIPES)} (reference = google/diffseg's "
                             "benchmark: t=300, threshold 1.1, 3 iterations, 16x16 anchors, no refinement).")
    unknown = set(given) - set(DiffSegConfig.__dataclass_fields__)
    if unknown:
        raise LatentmedError(f"unknown DiffSeg settings {sorted(unknown)}; "
                             f"expected {sorted(DiffSegConfig.__dataclass_fields__)}.")
    return DiffSegConfig(**{**RECIPES[recipe], **{k: v for k, v in given.items() if v is not None}})


@dataclass
class DiffSeg:
    """DiffSeg on a diffusers ``UNet2DConditionModel``.

    - ``unet``: the denoiser (must have self-attention blocks).
    - ``schedule``: a :mod:`latentmed.diffusion` schedule (or name); used only with ``config.noised``
      (``z_t = alpha(t) z_0 + sigma(t) eps`` with ``t`` from :meth:`noise_time`).
    - ``encode``: images ``[B, C, H, W]`` in [-1, 1] -> latents ``z_0``; ``None`` = pixel space.
      :meth:`from_vae` builds it from an ``AutoencoderKL`` and its scaling factor.
    - ``indexing``: what the integer ``timestep`` k means. Both feed the UNet the time input k;
      ``diffusers`` (Stable Diffusion, any diffusers folder, and DiNO-Diffusion runs trained on
      ``1000 t - 1``) noises at ``alphas_cumprod[k]``, i.e. ``t = (k + 1) / T``; ``latentmed`` (runs
      trained on ``1000 t`` before ``timestep_offset`` existed) at ``t = k / T``.
    """

    unet: torch.nn.Module
    schedule: object = "linear"
    encode: Callable[[torch.Tensor], torch.Tensor] | None = None
    config: DiffSegConfig = field(default_factory=DiffSegConfig)
    indexing: str = "latentmed"
    latent_factor: int = 1

    def __post_init__(self):
        from latentmed.diffusion import get_schedule

        self.schedule = get_schedule(self.schedule)
        if self.indexing not in INDEXINGS:
            raise LatentmedError(f"indexing={self.indexing!r}: expected one of {INDEXINGS}.")
        self_attention_modules(self.unet)  # clear error now for a UNet without self-attention
        check_timestep(self.config.timestep, self.config.num_train_timesteps)

    def noise_time(self, timestep: int) -> float:
        """The continuous ``t`` of the integer ``timestep`` under :attr:`indexing` (used by ``noised``)."""
        return (timestep + (1 if self.indexing == "diffusers" else 0)) / self.config.num_train_timesteps

    @classmethod
    def from_vae(cls, unet, vae=None, *, scaling_factor: float | None = None, **kwargs) -> "DiffSeg":
        """Build from an ``AutoencoderKL`` (latents = posterior mean x scaling factor) or ``vae=None``."""
        if vae is None:
            return cls(unet, encode=None, latent_factor=1, **kwargs)
        scale = float(scaling_factor if scaling_factor is not None else getattr(vae.config, "scaling_factor", 1.0))
        factor = 2 ** (len(vae.config.block_out_channels) - 1)

        def encode(x: torch.Tensor) -> torch.Tensor:
            return vae.encode(x).latent_dist.mean * scale

        return cls(unet, encode=encode, latent_factor=factor, **kwargs)

    # ------------------------------------------------------------------ attention
    def latents(self, images: torch.Tensor) -> torch.Tensor:
        """``z_0`` of ``images`` (checked against the UNet's channels and downsampling)."""
        check_images(images, self.latent_factor * 2 ** _num_downsamplers(self.unet))
        with torch.no_grad():
            z = images if self.encode is None else self.encode(images)
        in_ch = self.unet.config.in_channels
        if z.shape[1] != in_ch:
            raise LatentmedError(f"the UNet takes {in_ch} input channels but the {'images' if self.encode is None else 'latents'} "
                                 f"have {z.shape[1]}; pass the VAE the UNet was trained with (or none for pixel space).")
        return z

    def attention(self, images: torch.Tensor, cond: torch.Tensor | None, timestep: int | None = None,
                  weighting=None) -> torch.Tensor:
        """Aggregated self-attention ``[B, h*w, h, w]`` of ``images`` at ``timestep`` (one UNet pass).

        The UNet sees the clean latent ``z_0`` and the time input of ``timestep`` (google/diffseg),
        or ``z_t`` when ``config.noised``.
        """
        cfg = self.config
        timestep = cfg.timestep if timestep is None else timestep
        check_timestep(timestep, cfg.num_train_timesteps)
        z0 = self.latents(images)
        cond = self._check_cond(cond, z0.shape[0])
        t = torch.full((z0.shape[0],), self.noise_time(timestep), dtype=torch.float32)
        z_in = z0
        if cfg.noised:
            generator = torch.Generator().manual_seed(cfg.seed)
            eps = torch.randn(z0.shape, generator=generator).to(z0)
            alpha, sigma = self.schedule.alpha(t).to(z0), self.schedule.sigma(t).to(z0)
            z_in = alpha.view(-1, 1, 1, 1) * z0 + sigma.view(-1, 1, 1, 1) * eps
        dtype = torch.float16 if cfg.store_float16 else torch.float32
        with torch.no_grad(), capture_self_attention(self.unet, dtype=dtype) as store:
            self.unet(z_in, torch.full((z0.shape[0],), float(timestep)).to(z0), encoder_hidden_states=cond)
        return aggregate_attention(store.maps(), tuple(z0.shape[-2:]), weighting or cfg.weighting)

    def _check_cond(self, cond, batch: int):
        dim = self.unet.config.cross_attention_dim
        if cond is None:
            raise LatentmedError(f"the UNet needs a conditioning tensor [B, tokens, {dim}] (encoder_hidden_states).")
        if cond.ndim == 2:
            cond = cond[:, None]
        if cond.ndim != 3 or cond.shape[-1] != dim or cond.shape[0] not in (1, batch):
            raise LatentmedError(f"conditioning of shape {tuple(cond.shape)}: expected [{batch} (or 1), tokens, {dim}] "
                                 "to match the UNet's cross_attention_dim.")
        return cond.expand(batch, -1, -1)

    # ------------------------------------------------------------------ segmentation
    def segment(self, images: torch.Tensor, cond: torch.Tensor | None, **overrides) -> list[MergeResult]:
        """Label maps at image size for ``images [B, C, H, W]`` in [-1, 1]; ``overrides`` replace config fields."""
        cfg = replace(self.config, **overrides) if overrides else self.config
        results = []
        for start in range(0, images.shape[0], cfg.batch_size):
            chunk = images[start:start + cfg.batch_size]
            c = cond if cond is None or cond.shape[0] == 1 else cond[start:start + cfg.batch_size]
            attn = self.attention(chunk, c, cfg.timestep, cfg.weighting)
            for a in attn:
                results.append(segment_with(a, tuple(images.shape[-2:]), cfg))
        return results


def segment_with(attention: torch.Tensor, size: tuple[int, int], cfg: DiffSegConfig,
                 threshold: float | tuple[float, ...] | None = None) -> MergeResult:
    """Merge one aggregated map ``[h*w, h, w]`` with ``cfg``'s settings (``threshold`` overrides it)."""
    tau = cfg.threshold if threshold is None else threshold
    if cfg.threshold_quantile is not None and threshold is None:
        tau = calibrated_threshold(attention, cfg.threshold_quantile, grid=cfg.grid)
    return segment_attention(attention, size, tau, iterations=cfg.iterations, grid=cfg.grid, refine=cfg.refine,
                             random_state=cfg.seed, num_segments=cfg.num_segments, mode=cfg.merge,
                             kl_fp16=cfg.kl_fp16)


def _num_downsamplers(unet) -> int:
    """How many times the UNet halves its input (``num_upsamplers`` mirrors the downsamplers)."""
    return int(getattr(unet, "num_upsamplers", 0))


def check_timestep(timestep: int, num_train_timesteps: int) -> None:
    if not (isinstance(timestep, int) or float(timestep).is_integer()) or not 0 <= timestep < num_train_timesteps:
        raise LatentmedError(f"timestep={timestep}: expected an integer in [0, {num_train_timesteps}) "
                             "(DiffSeg uses 300; 100-500 works best on chest X-rays).")


def check_images(images: torch.Tensor, multiple: int) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise LatentmedError(f"images of shape {shape}: expected a float tensor [B, C, H, W] in [-1, 1].")
    h, w = images.shape[-2:]
    if h % multiple or w % multiple:
        raise LatentmedError(f"image size {h}x{w} cannot go through this model: height and width must be multiples "
                             f"of {multiple} (VAE x UNet downsampling). Resize or crop the images, e.g. to "
                             f"{max(multiple, h // multiple * multiple)}x{max(multiple, w // multiple * multiple)}.")


def kmeans_intensity_baseline(images: torch.Tensor, k: int | Sequence[int] = 4, seed: int = 0) -> list[torch.Tensor]:
    """KMeans on pixel intensities, one ``[H, W]`` label map per image (see :func:`.baselines.kmeans_baseline`)."""
    from latentmed.segment.baselines import kmeans_baseline

    return kmeans_baseline(images, k, seed=seed, features="intensity")
