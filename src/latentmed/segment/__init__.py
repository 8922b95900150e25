"""Zero-shot segmentation from a diffusion UNet's self-attention (DiffSeg, Tian et al. 2024).

Pipeline: :func:`capture_self_attention` (one UNet pass at timestep t) ->
:func:`aggregate_attention` (heads, blocks, resolutions) -> :func:`merge_attention`
(anchor grid + iterative symmetric-KL merging, optional KMeans refinement) ->
:func:`proposals_to_labels` (argmax at image size). :class:`DiffSeg` runs it on any diffusers
``UNet2DConditionModel``; :func:`match_structures` scores proposals against labelled anatomy;
:mod:`latentmed.segment.run` works on folders (CLI ``latentmed segment``).
"""

from latentmed.segment.aggregate import aggregate_attention, resolution_weights
from latentmed.segment.capture import AttentionStore, SelfAttentionRecorder, capture_self_attention
from latentmed.segment.diffseg import DiffSeg, DiffSegConfig, kmeans_intensity_baseline
from latentmed.segment.baselines import grid_baseline, kmeans_baseline
from latentmed.segment.match import (HungarianScores, StructureMatch, best_candidate, best_union, hungarian_counts,
                                     match_one_to_one, match_structures)
from latentmed.segment.merge import (MergeResult, anchor_grid, calibrated_threshold, merge_attention,
                                     proposals_to_labels, segment_attention, symmetric_kl)

__all__ = [
    "AttentionStore", "DiffSeg", "DiffSegConfig", "HungarianScores", "MergeResult", "SelfAttentionRecorder", "StructureMatch",
    "aggregate_attention", "anchor_grid", "best_candidate", "best_union", "calibrated_threshold", "capture_self_attention",
    "grid_baseline", "hungarian_counts", "kmeans_baseline", "kmeans_intensity_baseline", "match_one_to_one", "match_structures",
    "merge_attention", "proposals_to_labels", "resolution_weights", "segment_attention", "symmetric_kl",
]
