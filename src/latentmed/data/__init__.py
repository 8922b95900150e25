"""Reading medical images as 2D tensors in [-1, 1]: folders, arrays (incl. MedMNIST), NIfTI, DICOM.

``open_images(...)`` returns an :class:`ImageDataset` whose items are
``{"image": FloatTensor[C, H, W] in [-1, 1], "id": str}`` (+ ``"labels"``); ``read_labels``
reads a labels CSV; :mod:`~latentmed.data.transforms` scales, resizes and augments;
:mod:`~latentmed.data.phantoms` generates synthetic data with known ground truth.
"""

from latentmed.data.dataset import ImageDataset, open_images
from latentmed.data.labels import read_labels
from latentmed.data.transforms import (center_crop, resize_center_crop, retinamnist_augment, to_channels,
                                       to_unit_range)
from latentmed.data.volumes import WINDOWS, DataNotice, load_centroids

__all__ = ["ImageDataset", "open_images", "read_labels", "retinamnist_augment", "resize_center_crop",
           "center_crop", "to_channels", "to_unit_range", "WINDOWS", "DataNotice", "load_centroids"]
