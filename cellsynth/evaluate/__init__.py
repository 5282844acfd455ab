"""Image realism metrics, segmentation metrics and the Syn2Real harness."""
