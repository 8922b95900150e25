"""The data layer: every format read once, as 2D tensors in [-1, 1] (or 3D masks), with one id rule.

``open_images(...)`` returns an :class:`ImageDataset` whose items are
``{"image": FloatTensor[C, H, W] in [-1, 1], "id": str}`` (+ ``"labels"``) from folders,
manifests, arrays (incl. MedMNIST), NIfTI, DICOM and tar shards. Modules, one job each:

- :mod:`~latentmed.data.formats`: suffixes, file kinds, ids from names, single-file readers and
  writers (images, NIfTI);
- :mod:`~latentmed.data.sources`: where items come from (folders, manifests, arrays, volumes, shards);
- :mod:`~latentmed.data.dataset`: :class:`ImageDataset` and :func:`open_images`;
- :mod:`~latentmed.data.labels`: the labels reader, id matching, binary label matrices;
- :mod:`~latentmed.data.volumes`, :mod:`~latentmed.data.dicom`, :mod:`~latentmed.data.slicing`:
  3D volumes, DICOM series, and how volumes are cut into slices;
- :mod:`~latentmed.data.shards`: writing tar shards; :mod:`~latentmed.data.transforms`: scaling
  (the one value-range rule), resizing, augmentation; :mod:`~latentmed.data.notices`: what readers
  tell the user; :mod:`~latentmed.data.phantoms`: synthetic data with known ground truth.
"""

from latentmed.data.dataset import ImageDataset, open_images
from latentmed.data.formats import file_stem, is_nifti, read_image, read_nifti, write_nifti
from latentmed.data.labels import label_matrix, match_ids, read_labels
from latentmed.data.notices import DataNotice
from latentmed.data.shards import write_shards
from latentmed.data.slicing import WINDOWS, load_centroids
from latentmed.data.transforms import (center_crop, resize_center_crop, retinamnist_augment, to_channels,
                                       to_unit_range)

__all__ = ["ImageDataset", "open_images", "read_labels", "match_ids", "label_matrix", "write_shards",
           "file_stem", "is_nifti", "read_image", "read_nifti", "write_nifti", "retinamnist_augment",
           "resize_center_crop", "center_crop", "to_channels", "to_unit_range", "WINDOWS", "DataNotice",
           "load_centroids"]
