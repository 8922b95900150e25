"""Metrics with a functional form (per-sample values, batch first) and an accumulating ``torchmetrics.Metric`` class.

The classes' states reduce across DDP ranks (see :mod:`latentmed.metrics._base`).

* :mod:`latentmed.metrics.segmentation`: Dice, volumetric similarity, sensitivity, specificity,
  NMI, Cohen's kappa, Hausdorff-95 of batches of binary masks, 2D/3D, argument order (truth, pred).
* :mod:`latentmed.metrics.image`: PSNR, SSIM (2D/3D).
* :mod:`latentmed.metrics.fid`: Frechet distance and FID with any feature extractor, Inception-v3
  from a local TorchScript file.
* :mod:`latentmed.metrics.lpips`: LPIPS from local weights (AlexNet/VGG16 rebuilt).
* :mod:`latentmed.metrics.classification`: AUC, macro-F1, MAE, confusion matrix.
* :mod:`latentmed.metrics.generation`: precision/recall (k-NN manifolds), FID on features,
  nearest-neighbour memorisation, pixel-PCA features (sample quality of generative models).
"""

from latentmed.metrics.classification import AUC, MAE, Confusion, MacroF1, auc, confusion, mae, macro_f1
from latentmed.metrics.fid import FID, TorchScriptInception, feature_statistics, frechet_distance
from latentmed.metrics.generation import (PixelPCA, frechet_feature_distance, knn_radii, memorisation,
                                         nearest_neighbour_distances, precision_recall)
from latentmed.metrics.image import PSNR, SSIM, psnr, ssim
from latentmed.metrics.lpips import LPIPS, MeanLPIPS
from latentmed.metrics.segmentation import (
    NMI,
    SEGMENTATION_METRICS,
    CohenKappa,
    Dice,
    Hausdorff95,
    SegmentationScores,
    Sensitivity,
    Specificity,
    VolumetricSimilarity,
    cohen_kappa,
    confusion_counts,
    dice,
    hausdorff95,
    nmi,
    segmentation_scores,
    sensitivity,
    specificity,
    volumetric_similarity,
)

__all__ = [
    "AUC", "MAE", "Confusion", "MacroF1", "auc", "confusion", "mae", "macro_f1",
    "PixelPCA", "frechet_feature_distance", "knn_radii", "memorisation", "nearest_neighbour_distances",
    "precision_recall",
    "FID", "LPIPS", "PSNR", "SSIM", "MeanLPIPS", "TorchScriptInception", "feature_statistics",
    "frechet_distance", "psnr", "ssim",
    "NMI", "SEGMENTATION_METRICS", "CohenKappa", "Dice", "Hausdorff95", "SegmentationScores", "Sensitivity",
    "Specificity", "VolumetricSimilarity", "cohen_kappa", "confusion_counts", "dice", "hausdorff95", "nmi",
    "segmentation_scores", "sensitivity", "specificity", "volumetric_similarity",
]
