"""Dataset folders: the folder with its manifest and checksums (:mod:`.manifest`), building and
resuming one (:mod:`.build`), importing annotated files (:mod:`.importing`), the
field's training layouts (:mod:`.exports`), the preview PNGs (:mod:`.previews`), spatially
disjoint parts (:mod:`.split`), and the one door from files, folders and arrays to Samples
(:mod:`.samples`: :func:`as_samples`, :func:`read_sample`, :func:`write_sample`).

Examples
--------
>>> from cellsynth.dataset import Dataset, export_dataset
>>> dataset = Dataset.open("data/nuclei")  # doctest: +SKIP
>>> export_dataset(dataset, "stardist", "data/nuclei_stardist")  # doctest: +SKIP
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "exports": ["EXPORT_FORMATS", "LAYOUTS", "export_dataset"],
    "build": ["build_dataset", "example_dataset", "sample_names", "sample_rng"],
    "importing": ["import_dataset", "paired_files"],
    "manifest": ["EXTRA_KINDS", "FOLDERS", "MANIFEST_FORMAT", "MANIFEST_NAME", "Dataset"],
    "previews": ["write_preview"],
    "samples": ["as_samples", "read_sample", "write_sample"],
    "split": ["split_dataset", "split_volume"],
})
