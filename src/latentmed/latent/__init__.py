"""Latent-space grading and counterfactual explanations (Keicher, Atad et al.).

- :class:`LinearProbe`, :class:`HyperplaneGrader`: scikit-learn estimators on ``z_sem``.
- :mod:`latentmed.latent.counterfactual`: reflection / move-to-grade / traversal math and
  :func:`make_counterfactuals` with a diffusion autoencoder.
- :mod:`latentmed.latent.io`: latents ``.npz`` files and grader folders.
- :mod:`latentmed.latent.workflow`: one function per CLI command (fit, predict, evaluate, counterfactual).
- :mod:`latentmed.latent.report`: figures, Markdown and HTML from the grading and counterfactual results.
"""

from latentmed.latent.counterfactual import (CounterfactualResult, grade_latents, make_counterfactuals,
                                             move_direction, move_to_distance, reflect, signed_distance, traverse)
from latentmed.latent.evaluation import GradingResult
from latentmed.latent.grader import HyperplaneGrader, calibration_name, parse_calibration
from latentmed.latent.io import Latents, load_grader, load_latents, save_grader, save_latents
from latentmed.latent.probe import LinearProbe
from latentmed.latent.report import grading_markdown, write_counterfactual_html, write_grading
from latentmed.latent.workflow import (Baselines, counterfactuals_from_run, evaluate_grader, fit_grader, fit_graders,
                                       holdout_split, join_labels, predict_grades)

__all__ = [
    "Baselines", "CounterfactualResult", "GradingResult", "HyperplaneGrader", "Latents", "LinearProbe", "calibration_name",
    "counterfactuals_from_run", "evaluate_grader", "fit_grader", "fit_graders", "grade_latents", "holdout_split",
    "join_labels", "load_grader", "load_latents", "make_counterfactuals", "move_direction",
    "move_to_distance", "parse_calibration",
    "grading_markdown", "predict_grades", "reflect", "save_grader", "save_latents", "signed_distance", "traverse",
    "write_counterfactual_html", "write_grading",
]
