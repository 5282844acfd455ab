"""Dataset folders: the folder with its manifest and checksums (:mod:`.manifest`), building and
resuming one (:mod:`.build`), importing annotated files (:mod:`.importing`), the
field's training layouts (:mod:`.exports`), the preview PNGs (:mod:`.previews`), spatially
disjoint parts (:mod:`.split`), and the one door from files, folders and arrays to Samples
(:mod:`.samples`: :func:`as_samples`, :func:`read_sample`, :func:`write_sample`).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from cellsynth.dataset import Dataset, export_dataset, import_dataset
>>> from cellsynth.examples import toy_nuclei
>>> from cellsynth.io import write_volume
>>> root = Path(tempfile.mkdtemp())
>>> image, labels, spacing = toy_nuclei()
>>> _ = write_volume(root / "nuclei.tif", image, spacing), write_volume(root / "labels.tif", labels, spacing)
>>> _ = import_dataset(root / "toy", [root / "nuclei.tif"], [root / "labels.tif"], progress=False)
>>> dataset = Dataset.open(root / "toy")
>>> export_dataset(dataset, "stardist", root / "toy_stardist", progress=False).name
'toy_stardist'
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
