"""Training the generators on your own images: the loop both share (:mod:`.loop`), their data
(:mod:`.data`: images read and normalised, patches drawn) and what a run
needs around the networks (:mod:`.runs`: accelerator, per-process seeds, checkpoint state, log).

Examples
--------
>>> from cellsynth.training import train_ddpm, train_gan
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "data": ["load_training_images"],
    "loop": ["train_ddpm", "train_gan"],
    "refine": ["generate_refined_like", "train_refiner"],
    "runs": ["end_processes", "rank_seed"],
})
