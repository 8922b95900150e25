"""Evaluation runs built on :mod:`latentmed.metrics`: DAE reconstruction and generation tables, segmentation folders.

Reports are Markdown + JSON tables (:func:`write_report`) in the layout of the two-phase paper's Table 4.
"""

from latentmed.evaluation.generation import (GenerationResult, GenerationSettings, evaluate_generation,
                                             grade2_fraction, write_generation)
from latentmed.evaluation.ppl import evaluate_interpolation_ppl, perceptual_path_length
from latentmed.evaluation.reconstruction import MODES, MetricRow, evaluate_reconstruction, resolve_feature_extractor
from latentmed.evaluation.report import markdown_table, write_report
from latentmed.evaluation.segmentation import evaluate_segmentation_folders, match_mask_files

__all__ = ["GenerationResult", "GenerationSettings", "MODES", "MetricRow", "evaluate_generation",
           "evaluate_interpolation_ppl", "evaluate_reconstruction", "grade2_fraction", "perceptual_path_length",
           "resolve_feature_extractor", "markdown_table", "write_generation", "write_report",
           "evaluate_segmentation_folders", "match_mask_files"]
