"""Image diversification and label-safe 3D augmentations (numpy in, numpy out)."""
