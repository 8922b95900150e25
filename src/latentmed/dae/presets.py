"""Named DAE configurations.

- ``diffae-64``: DiffAE's 64px setting (Preechakul et al. 2022, Table 7): ch 64, mult (1,2,4,8),
  encoder mult (1,2,4,8,8), 2 res blocks, attention at 16, dropout 0.1, z_sem 512; 86.9M
  parameters. It is *not* a copy of the released ``ffhq64_autoenc`` (90.8M), which differs in
  (see :data:`REFERENCE_DIFFERENCES`): time-embedding width 512 (ours 4 x ch = 256); 1
  attention head (ours 4); down/up-sampling inside conditioned ResBlocks (ours strided conv /
  nearest + conv); encoder ResBlocks with one conv (ours two) and an encoder middle block
  (ResBlock, attention, ResBlock; ours none unless ``encoder.middle=True``); the network sees t as
  step k in 0..T-1 (ours 1000 t, i.e. k + 1 on the linear schedule); a leading DDIM grid (ours
  trailing, integer steps); x0 clipped during inversion (ours unclipped, clipping only when
  decoding).
- ``vertebra-96``: the 96x96, 512-d setting of the fracture-grading papers (Keicher, Atad et
  al.); levels (1,1,2,3,4) as DiffAE's 128px model, attention at 24 and 12.
- ``tiny``: ~1.7M parameters for CPU tests and the demo. Its encoder flattens the last feature
  map instead of average pooling (``encoder.pool="flatten"``): on the centred ``spine2d`` crops a
  1200-step CPU run then separates fractures linearly in z_sem (5-fold logistic AUC 0.92
  against 0.74 with DiffAE's average pooling; ``experiments/dae_training.md``).
"""

from __future__ import annotations

from typing import Any

from latentmed.config import from_dict, to_dict
from latentmed.dae.model import DAEConfig, upgrade_dae_config
from latentmed.errors import LatentmedError

PRESETS: dict[str, dict[str, Any]] = {
    "diffae-64": dict(image_size=64, model_channels=64, channel_mult=(1, 2, 4, 8), num_res_blocks=2,
                      attention_resolutions=(16,), dropout=0.1, z_dim=512,
                      encoder=dict(channel_mult=(1, 2, 4, 8, 8), num_res_blocks=2, attention_resolutions=(16,))),
    "vertebra-96": dict(image_size=96, model_channels=64, channel_mult=(1, 1, 2, 3, 4), num_res_blocks=2,
                        attention_resolutions=(24, 12), dropout=0.1, z_dim=512,
                        encoder=dict(channel_mult=(1, 1, 2, 3, 4, 4), num_res_blocks=2, attention_resolutions=(12,))),
    "tiny": dict(image_size=32, model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1,
                 attention_resolutions=(8,), dropout=0.0, z_dim=128,
                 encoder=dict(channel_mult=(1, 2, 2, 2), num_res_blocks=1, attention_resolutions=(), pool="flatten")),
}


#: How a preset differs from the reference model it is named after (shown by ``latentmed presets``).
REFERENCE_DIFFERENCES: dict[str, tuple[str, ...]] = {
    "diffae-64": (
        "reference: DiffAE ffhq64_autoenc (90.8M parameters; ours 86.9M)",
        "time-embedding width 256 (4 x ch) vs 512",
        "4 attention heads vs 1",
        "strided-conv down / nearest+conv up vs resampling inside conditioned ResBlocks",
        "encoder ResBlocks with two convs vs one; no encoder middle block (unless encoder.middle=true) vs "
        "ResBlock-attention-ResBlock",
        "network time input 1000 t (k + 1 on the linear schedule) vs step k in 0..T-1",
        "trailing DDIM grid (integer steps) vs leading",
        "no x0 clipping during inversion vs clipped",
    ),
}


def preset_config(name: str, **overrides: Any) -> DAEConfig:
    """The :class:`DAEConfig` of preset ``name`` with ``overrides`` (e.g. ``in_channels=3``,
    ``encoder={"pool": "avg"}``; the flat ``enc_*`` keys of older configs are read too)."""
    if name not in PRESETS:
        raise LatentmedError(f"unknown DAE preset {name!r}. Available: {', '.join(PRESETS)}.")
    preset, overrides = PRESETS[name], upgrade_dae_config(overrides)
    data = {**to_dict(DAEConfig()), **preset, **overrides}
    data["encoder"] = {**to_dict(DAEConfig().encoder), **preset.get("encoder", {}), **(overrides.get("encoder") or {})}
    return from_dict(DAEConfig, data, where=f"preset {name}")
