"""Shipped YAML presets (``cellsynth config list``)."""
