"""`latentmed demo`."""
