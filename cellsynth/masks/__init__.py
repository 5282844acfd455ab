"""Mask simulators and label-derived maps: numpy, scipy, scikit-image, pyshtools and trimesh only (never torch)."""
