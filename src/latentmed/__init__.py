"""latentmed: diffusion latent spaces of medical images, learned without labels.

Subpackages follow the data flow ``data -> nn/diffusion -> dae|shape|ldm -> latent -> viz``;
see ``README.md`` and the design notes for the map.
"""

__version__ = "0.1.0"
