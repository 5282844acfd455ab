"""Building a dataset folder: one sample at a time, from its own random generator, serially or on
workers, resumable (:func:`build_dataset`); the cells3d example as a dataset (:func:`example_dataset`)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cellsynth.config import OutputConfig
from cellsynth.dataset.manifest import Dataset, check_dataset_target, write_sample_files
from cellsynth.errors import DatasetError
from cellsynth.io import remove_partials
from cellsynth.locks import folder_lock
from cellsynth.sample import Sample


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of sample ``index``: ``SeedSequence(seed).spawn(...)[index]``.

    Built directly from the spawn key, so any sample can be regenerated alone, and serial and
    parallel runs draw the same numbers.

    Parameters
    ----------
    seed : int
        The dataset's base seed.
    index : int
        The sample's index.

    Returns
    -------
    numpy.random.Generator

    Examples
    --------
    >>> int(sample_rng(0, 3).integers(100)) == int(sample_rng(0, 3).integers(100))  # sample 3, any run
    True
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def sample_names(prefix: str, n_samples: int) -> list[str]:
    """``prefix_0000`` … with at least four digits.

    Parameters
    ----------
    prefix : str
    n_samples : int

    Returns
    -------
    list of str

    Examples
    --------
    >>> sample_names("sample", 3)
    ['sample_0000', 'sample_0001', 'sample_0002']
    """
    digits = max(4, len(str(n_samples - 1)))
    return [f"{prefix}_{i:0{digits}d}" for i in range(n_samples)]


def build_dataset(
    root: str | os.PathLike,
    names: Sequence[str],
    make_sample: Callable[[int, np.random.Generator], Sample],
    *,
    config: Mapping,
    seed: int | None,
    output: OutputConfig,
    resume: bool = False,
    progress: bool = True,
    executor=None,
) -> Dataset:
    """Create (or resume) a dataset by calling ``make_sample`` for every sample still to do.

    Parameters
    ----------
    root : path-like
        The dataset folder.
    names : sequence of str
        Sample names (file stems), one per sample.
    make_sample : callable ``(index, rng) -> Sample``
        Makes sample ``index`` from its own generator (:func:`sample_rng`; seed 0 when ``seed`` is
        None). Must pickle when an ``executor`` is given.
    config, seed, output
        Recorded in the manifest; see :meth:`Dataset.create`.
    resume : bool
        Continue an existing dataset made with the same config and seed: verified samples are
        skipped, missing, failed or corrupt ones redone, stale temporaries removed.
    progress : bool
        Show a progress bar (only on a terminal).
    executor : concurrent.futures.Executor or distributed.Client, optional
        Make and write samples there (each worker writes its own sample's files; only this
        process writes the manifest). Default: serially here. The files are identical either way.

    Returns
    -------
    Dataset

    Raises
    ------
    InputError
        If ``root`` cannot be written (see :func:`cellsynth.checks.check_output`) or exists and
        ``resume`` is false.
    DatasetError
        If the folder was made with another config, seed or sample list. If ``make_sample``
        raises, the sample is recorded as failed and the exception propagates; the files of
        finished samples stay valid, and a folder this run created is removed again when no
        sample had finished.

    Examples
    --------
    >>> import tempfile
    >>> from cellsynth.config import OutputConfig
    >>> labels = np.zeros((4, 16, 16), np.uint16); labels[1:3, 4:12, 4:12] = 1
    >>> def make(index, rng):
    ...     return Sample(labels, rng.random(labels.shape).astype(np.float32), (1.0, 0.5, 0.5))
    >>> root = Path(tempfile.mkdtemp()) / 'toy'
    >>> dataset = build_dataset(root, ['a', 'b'], make, config={}, seed=0, output=OutputConfig(), progress=False)
    >>> dataset.manifest['counts']['done'], dataset.read_sample(1).name, dataset.read_sample(1).spacing
    (2, 'b', (1.0, 0.5, 0.5))
    """
    root = check_dataset_target(root, resume)
    with folder_lock(root, "dataset"):
        return _build(root, names, make_sample, config=config, seed=seed, output=output, resuming=resume,
                      progress=progress, executor=executor)


def make_and_write_sample(root: str | os.PathLike, name: str, index: int, seed: int | None, output: OutputConfig,
                          make_sample: Callable[[int, np.random.Generator], Sample]) -> dict:
    """Make sample ``index`` from its own generator and write its files; returns its manifest entry.

    Module-level and free of shared state, so worker processes and dask workers can run it.
    """
    return write_sample_files(root, name, make_sample(index, sample_rng(seed or 0, index)), output)


def _build(root: Path, names: Sequence[str], make_sample: Callable[[int, np.random.Generator], Sample], *,
           config: Mapping, seed: int | None, output: OutputConfig, resuming: bool, progress: bool,
           executor) -> Dataset:
    existed = root.exists()
    if resuming:
        dataset, fresh = Dataset.open(root), False
        _check_same_recipe(dataset, names, config, seed, output)
        remove_partials(root)
    else:
        dataset, fresh = Dataset.create(root, names, config=config, seed=seed, output=output), True
    todo = dataset.pending()
    bar = tqdm(total=len(todo), desc="samples", unit="sample", disable=True if not progress else None)
    futures: dict = {}
    try:
        if executor is None:
            for index in todo:
                _run_one(dataset, index, lambda i=index: make_and_write_sample(
                    root, dataset.name(i), i, seed, output, make_sample))
                bar.update()
        else:
            futures = {executor.submit(make_and_write_sample, root, dataset.name(i), i, seed, output, make_sample): i
                       for i in todo}
            for future in _completed(executor, list(futures)):
                _run_one(dataset, futures[future], future.result)
                bar.update()
    except BaseException:
        for future in futures:
            future.cancel()
        if fresh and not dataset.done():
            _remove_fresh(root, existed)
        raise
    finally:
        bar.close()
    return dataset


def _run_one(dataset: Dataset, index: int, result: Callable[[], dict]) -> None:
    try:
        entry = result()
    except BaseException as err:
        dataset.record(index, error=f"{type(err).__name__}: {err}")
        raise
    dataset.record(index, entry)


def _completed(executor, futures):
    """Futures as they finish, for a ``concurrent.futures`` executor or a dask ``Client``."""
    if isinstance(executor, concurrent.futures.Executor):
        return concurrent.futures.as_completed(futures)
    from distributed import as_completed

    return as_completed(futures)


def _remove_fresh(root: Path, existed: bool) -> None:
    """Undo a dataset folder this run created and in which no sample finished."""
    if existed:
        for child in root.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    else:
        shutil.rmtree(root, ignore_errors=True)


def _check_same_recipe(dataset: Dataset, names: Sequence[str], config: Mapping, seed: int | None,
                       output: OutputConfig) -> None:
    recorded = dataset.manifest
    differences = [
        what
        for what, mine, theirs in (
            ("config", json.loads(json.dumps(config)), recorded["config"]),
            ("seed", seed, recorded["seed"]),
            ("output options", output.model_dump(), recorded["output"]),
            ("sample names", list(names), [s["name"] for s in dataset.samples]),
        )
        if mine != theirs
    ]
    if differences:
        raise DatasetError(
            f"cannot resume '{dataset.root}': its {', '.join(differences)} differ from this run's; "
            "resume with the same ones or choose a new folder"
        )


def example_dataset(out: str | os.PathLike, *, output: OutputConfig | None = None, resume: bool = False,
                    progress: bool = True) -> Dataset:
    """scikit-image's cells3d nuclei (the ``examples`` extra; research use only) as a one-sample dataset folder.

    Parameters
    ----------
    out : path-like
        The new dataset folder.
    output : OutputConfig, optional
        Which files to write per sample (default: images and labels).
    resume : bool
        Complete an interrupted run.
    progress : bool
        Show progress bars (only on a terminal).

    Returns
    -------
    Dataset

    Examples
    --------
    >>> import tempfile
    >>> dataset = example_dataset(Path(tempfile.mkdtemp()) / "cells3d", progress=False)  # needs cellsynth[examples]
    >>> dataset.name(0), dataset.read_sample(0).spacing
    ('cells3d_nuclei', (0.29, 0.26, 0.26))
    """
    from cellsynth.examples import cells3d_nuclei

    image, labels, spacing = cells3d_nuclei()
    sample = Sample(image=image, labels=labels, spacing=spacing, params={"source": "skimage cells3d nuclei"})
    return build_dataset(out, ["cells3d_nuclei"], lambda index, rng: sample, config={"example": "cells3d"},
                         seed=None, output=output or OutputConfig(), resume=resume, progress=progress)
