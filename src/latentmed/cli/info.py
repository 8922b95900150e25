"""`latentmed info` and `latentmed presets`."""
