"""Reconstruction quality of a diffusion autoencoder (two-phase paper, Table 4).

Reconstruction encodes each held-out image to ``z_sem`` and decodes it with
``steps`` DDIM steps in two ways (Khungurn et al., Sec. 5; DiffAE Table 2):

* ``stochastic``: ``x_T`` drawn from N(0, I) (seeded), so only ``z_sem`` carries the image;
* ``inversion``: ``x_T`` from deterministic DDIM inversion of the image on the same step grid.

Generation (samples of the latent DDIM against held-out images) is in
:mod:`latentmed.evaluation.generation`, perceptual path length in :mod:`latentmed.evaluation.ppl`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch

from latentmed.errors import LatentmedError
from latentmed.metrics.fid import FID
from latentmed.metrics.image import psnr, ssim
from latentmed.metrics.lpips import LPIPS

MODES = ("stochastic", "inversion")


@dataclass
class MetricRow:
    """One row of a results table: a setting (mode, steps, ...) and its metric values."""

    setting: dict[str, Any]
    metrics: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**self.setting, **self.metrics, **self.extra}


def _images_tensor(images: Any, limit: int | None) -> torch.Tensor:
    """A dataset (items ``{"image": ...}`` or tensors), a list of tensors or a tensor -> ``[N, C, ...]``."""
    if isinstance(images, torch.Tensor):
        x = images
    else:
        items = []
        n = len(images) if limit is None else min(int(limit), len(images))
        for i in range(n):
            item = images[i]
            items.append(item["image"] if isinstance(item, dict) else item[0] if isinstance(item, (tuple, list))
                         else item)
        if not items:
            raise LatentmedError("no images to evaluate: the data set is empty.")
        x = torch.stack([torch.as_tensor(t) for t in items])
    if limit is not None:
        x = x[: int(limit)]
    if x.shape[0] == 0:
        raise LatentmedError("no images to evaluate: the data set is empty.")
    return x.float()


def _check_steps(steps: Iterable[int]) -> list[int]:
    out = [int(s) for s in steps]
    if not out or any(s < 1 for s in out):
        raise LatentmedError(f"steps must be a non-empty list of positive integers, got {list(steps)!r}.")
    return out


def _check_modes(modes: Iterable[str]) -> list[str]:
    out = list(modes)
    bad = [m for m in out if m not in MODES]
    if not out or bad:
        raise LatentmedError(f"unknown reconstruction mode(s) {bad or out!r}; expected some of {', '.join(MODES)}.")
    return out


def resolve_feature_extractor(kind: str, dae=None, inception_path: str | None = None
                              ) -> tuple[Callable[[torch.Tensor], torch.Tensor] | None, str]:
    """Feature extractor for FID by name: ``none``, ``encoder`` (the DAE's own ``z_sem``) or ``inception``.

    Returns ``(extractor or None, description)``; the description goes into the report, since
    FIDs under different extractors cannot be compared.
    """
    if kind == "none":
        return None, "none"
    if kind == "encoder":
        if dae is None:
            raise LatentmedError("FID with the 'encoder' extractor needs the DAE.")
        return dae.encode, f"DAE semantic encoder ({dae.config.z_dim}-d z_sem, model {dae.model_id})"
    if kind == "inception":
        from latentmed.metrics.fid import TorchScriptInception

        if not inception_path:
            raise LatentmedError("FID with the 'inception' extractor needs --inception PATH to NVIDIA's "
                                 "inception-2015-12-05.pt (download it on a machine with internet).")
        return TorchScriptInception(inception_path), "Inception-v3 pool3 (inception-2015-12-05.pt, 2048-d)"
    raise LatentmedError(f"unknown FID feature extractor {kind!r}; expected none, encoder or inception.")


@torch.no_grad()
def evaluate_reconstruction(dae, images: Any, *, steps: Sequence[int] = (10, 20, 50),
                            modes: Sequence[str] = MODES, n: int | None = None, batch_size: int = 32,
                            seed: int = 0, lpips: LPIPS | None = None,
                            fid_extractor: Callable[[torch.Tensor], torch.Tensor] | None = None,
                            progress: bool = True) -> list[MetricRow]:
    """PSNR / SSIM (/ LPIPS / FID) of DAE reconstructions, one row per (mode, steps).

    Args:
        dae: a :class:`~latentmed.dae.DiffusionAutoencoder` (eval mode).
        images: held-out images in [-1, 1]: a tensor ``[N, C, ...]`` or a data set of
            ``{"image": ...}`` items (e.g. :func:`latentmed.data.open_images`).
        steps: DDIM step counts; inversion uses the same grid as decoding.
        modes: ``stochastic`` (random ``x_T``, seeded by ``seed``) and/or ``inversion``.
        n: evaluate the first ``n`` images only.
        lpips: an :class:`~latentmed.metrics.LPIPS` module, or None to skip it.
        fid_extractor: feature extractor for FID between originals and reconstructions, or None.

    Returns:
        rows with ``setting = {"mode", "steps"}`` and ``metrics = {"psnr", "ssim"[, "lpips", "fid"]}``
        (means over images; PSNR in dB on the [-1, 1] range).
    """
    from tqdm.auto import tqdm

    steps = _check_steps(steps)
    modes = _check_modes(modes)
    x_all = _images_tensor(images, n)
    dae.check_images(x_all[:1])
    batches = list(x_all.split(int(batch_size)))
    rows = []
    total = len(steps) * len(modes) * len(batches)
    fid = None
    if fid_extractor is not None:  # statistics of the originals, computed once
        fid = FID(fid_extractor, batch_size=int(batch_size))
        for x in batches:
            fid.update(x.to(dae.device), real=True)
    with tqdm(total=total, desc="reconstruct", disable=not progress) as bar:
        for s in steps:
            for mode in modes:
                gen = torch.Generator(device=dae.device).manual_seed(int(seed))
                sums: dict[str, list[torch.Tensor]] = {"psnr": [], "ssim": [], "lpips": []}
                if fid is not None:
                    fid.reset_generated()
                start = time.perf_counter()
                for x in batches:
                    x = x.to(dae.device)
                    z = dae.encode(x)
                    x_T = dae.encode_stochastic(x, z, steps=s) if mode == "inversion" else None
                    rec = dae.decode(z, x_T, steps=s, generator=gen).clamp(-1, 1)
                    sums["psnr"].append(psnr(x, rec).cpu())
                    sums["ssim"].append(_ssim_any_size(x, rec).cpu())
                    if lpips is not None:
                        sums["lpips"].append(lpips(x, rec).double().cpu())
                    if fid is not None:
                        fid.update(rec, real=False)
                    bar.update(1)
                metrics = {k: float(torch.cat(v).mean()) for k, v in sums.items() if v}
                if fid is not None:
                    metrics["fid"] = float(fid.compute()) if x_all.shape[0] >= 2 else float("nan")
                rows.append(MetricRow({"mode": mode, "steps": s}, metrics,
                                      {"n": int(x_all.shape[0]), "seconds": round(time.perf_counter() - start, 3)}))
    return rows


def _ssim_any_size(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM with the standard window (sigma 1.5) or, for images under 11 px, sigma 1 / 0.5."""
    size = min(x.shape[2:])
    sigma = 1.5 if size >= 11 else 1.0 if size >= 7 else 0.5
    return ssim(x, y, sigma=sigma)
