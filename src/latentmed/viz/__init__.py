"""Pictures: image grids, strips and plots (matplotlib with the Agg backend)."""

from latentmed.viz.figure import pyplot, save_figure
from latentmed.viz.grid import image_grid, save_image, save_image_grid, to_uint8

__all__ = ["image_grid", "pyplot", "save_figure", "save_image", "save_image_grid", "to_uint8"]
