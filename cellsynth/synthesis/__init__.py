"""From instance labels to images: conditioning, patch engine, physics renderer, learned generators, pipeline.

The public names are re-exported here and imported on first use (``lazy_loader``): torch is
imported only when a learned generator is.

Examples
--------
>>> from cellsynth.synthesis import OpticsRenderer, apply_patched, generate_dataset
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "calibrate": ["calibrate", "calibrate_files"],
    "calibrate_membranes": ["calibrate_membranes"],
    "conditioning": ["SketchStatistics", "fit_sketch_statistics", "gan_condition", "make_sketch", "mask_channel",
                     "positional_map"],
    "learned": ["DiffusionRenderer", "GanRenderer"],
    "measure": ["noise_correlation", "photon_transfer"],
    "optics": ["OpticsRenderer", "camera", "fluorophore_density", "psf_sigma_um"],
    "patching": ["PatchPlan", "apply_patched", "fit_patch"],
    "pipeline": ["Renderer", "generate_dataset", "generate_like", "load_renderer", "render_labels_file"],
    "preset": ["Calibration", "write_calibration"],
    "refine": ["RefineRenderer"],
})
