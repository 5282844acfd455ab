"""cellsynth: fully-annotated synthetic 3D fluorescence-microscopy datasets.

The names a notebook needs for the three jobs (generate annotated training sets, train the image
generators on your own images, export benchmark datasets) are here, imported on first use; the
rest is in the subpackages (``cellsynth.masks``, ``.synthesis``, ``.evaluate``, ``.augment``) and
the errors in ``cellsynth.errors``.

References
----------
The docstrings cite the five source documents by first author and subject:

- *Eschweiler et al., diversification*: D. Eschweiler, J. Schock, J. Stegmaier, "Probabilistic Image
  Diversification to Improve Segmentation in 3D Microscopy Image Data".
- *Eschweiler et al., data synthesis*: D. Eschweiler, M. Rethwisch, M. Jarchow, S. Koppers,
  J. Stegmaier, "3D fluorescence microscopy data synthesis for segmentation and benchmarking".
- *Chen, augmentations*: J. Chen, "Data Augmentations for Cell-Type Generalizable Instance
  Segmentation".
- *Eschweiler et al., DDPM*: D. Eschweiler, R. Yilmaz, M. Baumann, I. Laube, R. Roy, A. Jose,
  D. Brückner, J. Stegmaier, "Denoising Diffusion Probabilistic Models for Generation of Realistic
  Fully-Annotated Microscopy Image Datasets".
- *Malec, U-Net segmentation*: C. Malec, "Segmenting Microscopy Images" (Springboard capstone, 2019).

Examples
--------
>>> import cellsynth
>>> config = cellsynth.with_overrides(cellsynth.load_preset("nuclei"), {"dataset.n_samples": 2})
>>> cellsynth.generate_dataset(config, "data/nuclei", renderer=cellsynth.load_renderer(config))  # doctest: +SKIP
"""

from importlib import metadata as _metadata

import lazy_loader as _lazy_loader

__getattr__, __dir__, __all__ = _lazy_loader.attach(__name__, submod_attrs={
    "checkpoints": ["read_checkpoint_info"],
    "config": ["TrainConfig", "load_preset", "preset_names", "preset_text", "with_overrides"],
    "dataset": ["Dataset", "as_samples", "export_dataset", "read_sample", "write_sample"],
    "examples": ["cells3d_nuclei"],
    "masks.simulate": ["masks_from_labels", "simulate_masks"],
    "sample": ["Sample"],
    "synthesis.pipeline": ["generate_dataset", "load_renderer"],
    "training": ["train_ddpm", "train_gan"],
})

try:
    __version__ = _metadata.version("cellsynth")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
__all__ = [*__all__, "__version__"]
