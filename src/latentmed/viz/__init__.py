"""Pictures: image grids, strips and plots (matplotlib with the Agg backend)."""

from latentmed.viz.grid import image_grid, save_image, save_image_grid, to_uint8

__all__ = ["image_grid", "save_image", "save_image_grid", "to_uint8"]
