"""Attention aggregation (DiffSeg, Tian et al. 2024, Sec. 3.2).

Every head-averaged self-attention map ``[N_q, N_k]`` of a ``h x w`` resolution is turned into
``[H*W, H, W]`` at the largest resolution ``H x W``: the key dimensions are upsampled
bilinearly and renormalised to sum to one, the query dimensions are repeated (nearest), and the
resolutions are summed with weights proportional to their side length (the reference code's
``get_weight_rato``), or uniform, or as given.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F

from latentmed.errors import LatentmedError


def map_shapes(seq_lengths, latent_size: tuple[int, int]) -> dict[int, tuple[int, int]]:
    """Spatial shape ``(h, w)`` of each sequence length, found by halving ``latent_size`` (ceil).

    A UNet halves the latent with stride-2 convolutions, so a map of ``N`` tokens at depth ``k``
    is ``ceil(H / 2^k) x ceil(W / 2^k)``.
    """
    shapes = {}
    for n in seq_lengths:
        h, w = latent_size
        while h * w > n and (h > 1 or w > 1):
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        if h * w != n:
            raise LatentmedError(
                f"Self-attention over {n} tokens does not match any downsampling of the {latent_size} latent; "
                "expected h*w with h, w the latent size halved k times. Was the UNet run on this latent?"
            )
        shapes[n] = (h, w)
    return shapes


def resolution_weights(shapes: Mapping[int, tuple[int, int]], weighting: str | Mapping[int, float] = "proportional"
                       ) -> dict[int, float]:
    """Normalised weight per sequence length: ``"proportional"`` to the side length, ``"uniform"``,
    or a mapping ``{map height: weight}`` (missing heights get 0)."""
    if isinstance(weighting, str):
        if weighting == "proportional":
            raw = {n: float(math.sqrt(h * w)) for n, (h, w) in shapes.items()}
        elif weighting == "uniform":
            raw = {n: 1.0 for n in shapes}
        else:
            raise LatentmedError(f"weighting={weighting!r}: expected 'proportional', 'uniform' or {{height: weight}}.")
    else:
        heights = {h for h, _ in shapes.values()}
        unknown = set(weighting) - heights
        if unknown:
            raise LatentmedError(f"weighting names map heights {sorted(unknown)}; the maps have heights {sorted(heights)}.")
        raw = {n: float(weighting.get(h, 0.0)) for n, (h, w) in shapes.items()}
    total = sum(raw.values())
    if not total > 0 or any(v < 0 for v in raw.values()):
        raise LatentmedError(f"resolution weights {raw} must be non-negative with a positive sum.")
    return {n: v / total for n, v in raw.items()}


def aggregate_attention(maps: Mapping[int, torch.Tensor], latent_size: tuple[int, int],
                        weighting: str | Mapping[int, float] = "proportional") -> torch.Tensor:
    """Aggregate ``{N: [B, N, N]}`` maps into ``[B, H*W, H, W]`` at the largest map resolution.

    Each row ``[b, q]`` is a probability distribution over the ``H x W`` key positions.
    """
    if not maps:
        raise LatentmedError("No self-attention maps were recorded; did the forward pass run inside the capture?")
    shapes = map_shapes(maps.keys(), latent_size)
    weights = resolution_weights(shapes, weighting)
    n_max = max(shapes, key=lambda n: shapes[n][0] * shapes[n][1])
    H, W = shapes[n_max]
    batch = next(iter(maps.values())).shape[0]
    out = torch.zeros(batch, H * W, H, W)
    for n, a in maps.items():
        if weights[n] == 0:
            continue
        h, w = shapes[n]
        for b in range(batch):
            keys = a[b].float().reshape(n, 1, h, w)
            if (h, w) != (H, W):
                keys = F.interpolate(keys, size=(H, W), mode="bilinear", align_corners=False)
            keys = keys.reshape(n, H * W)
            keys = keys / keys.sum(dim=1, keepdim=True).clamp_min(1e-30)
            # queries: [H*W (keys, as channels), h, w] -> nearest to (H, W)
            full = keys.T.reshape(1, H * W, h, w)
            if (h, w) != (H, W):
                full = F.interpolate(full, size=(H, W), mode="nearest")
            out[b] += weights[n] * full.reshape(H * W, H * W).T.reshape(H * W, H, W)
    return out
