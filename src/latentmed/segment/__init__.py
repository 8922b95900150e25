"""Zero-shot segmentation from a diffusion UNet's self-attention (DiffSeg, Tian et al. 2024).

Pipeline: :func:`capture_self_attention` (one UNet pass at timestep t) ->
:func:`aggregate_attention` (heads, blocks, resolutions) -> :func:`merge_attention`
(anchor grid + iterative symmetric-KL merging, optional KMeans refinement) ->
:func:`proposals_to_labels` (argmax at image size). :class:`DiffSeg` runs it on any diffusers
``UNet2DConditionModel``; :func:`match_structures` scores proposals against labelled anatomy;
:func:`load_segmenter` loads a DiNO-Diffusion run or a diffusers (Stable Diffusion) folder;
:mod:`latentmed.segment.run` works on folders and returns result objects, :mod:`.report` writes
them (CLI ``latentmed segment``).
"""

from latentmed.segment.aggregate import aggregate_attention, resolution_weights
from latentmed.segment.capture import AttentionStore, SelfAttentionRecorder, capture_self_attention
from latentmed.segment.diffseg import (REFERENCE_RECIPE, DiffSeg, DiffSegConfig, diffseg_config,
                                       kmeans_intensity_baseline)
from latentmed.segment.baselines import grid_baseline, kmeans_baseline
from latentmed.segment.load import Segmenter, empty_prompt_context, load_context, load_segmenter
from latentmed.segment.match import (HungarianScores, StructureMatch, best_candidate, best_union, hungarian_counts,
                                     match_one_to_one, match_structures)
from latentmed.segment.merge import (MergeResult, anchor_grid, calibrated_threshold, merge_attention,
                                     proposals_to_labels, segment_attention, symmetric_kl)

__all__ = [
    "AttentionStore", "DiffSeg", "DiffSegConfig", "HungarianScores", "MergeResult", "REFERENCE_RECIPE",
    "Segmenter", "SelfAttentionRecorder", "StructureMatch", "aggregate_attention", "anchor_grid",
    "best_candidate", "best_union", "calibrated_threshold", "capture_self_attention", "diffseg_config",
    "empty_prompt_context", "grid_baseline", "hungarian_counts", "kmeans_baseline", "kmeans_intensity_baseline",
    "load_context", "load_segmenter", "match_one_to_one", "match_structures", "merge_attention",
    "proposals_to_labels", "resolution_weights", "segment_attention", "symmetric_kl",
]
