"""One command for the user: calibrate on your image, train the refiner on it, generate data like it.

``cellsynth generate --like IMAGE --refine [--minutes M]``: the physics renderer is calibrated on the
image(s) (:func:`~cellsynth.synthesis.pipeline.generate_like`), a small DDPM is trained on the same
image(s) within a CPU time budget (the ``ddpm-cpu`` training preset) in the run folder ``OUT-refiner``
beside the dataset, and every sample is rendered by the physics renderer and finished by that DDPM
(:class:`~cellsynth.synthesis.refine.RefineRenderer`). Interrupted at any point, ``--resume`` goes on:
an unfinished training from its last checkpoint, then the dataset.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from cellsynth.config import resolve_training_config, with_overrides
from cellsynth.dataset import MANIFEST_NAME, Dataset
from cellsynth.dataset.manifest import check_dataset_target
from cellsynth.errors import DatasetError
from cellsynth.io import write_json_atomic
from cellsynth.locks import folder_lock
from cellsynth.synthesis.pipeline import generate_like
from cellsynth.training.loop import CHECKPOINT_NAME, train_ddpm

#: The training preset of the refiner's DDPM.
REFINER_PRESET = "ddpm-cpu"
#: Marks a refiner run whose budget was spent (a resumed command does not train it again).
FINISHED_NAME = "finished.json"


def refiner_folder(out: str | os.PathLike) -> Path:
    """The refiner's run folder of the dataset ``out``: ``OUT-refiner`` beside it.

    Examples
    --------
    >>> refiner_folder("data/like")
    PosixPath('data/like-refiner')
    """
    out = Path(out)
    return out.parent / f"{out.name}-refiner"


def train_refiner(images: Sequence[str | os.PathLike], run: str | os.PathLike, *, minutes: float = 20.0,
                  spacing: Sequence[float] | None = None, steps: int | None = None, resume: bool = False,
                  progress: bool = True, device: str = "auto") -> Path:
    """Train the refiner's DDPM (the ``ddpm-cpu`` preset) on ``images`` for ``minutes``; its checkpoint.

    Parameters
    ----------
    images : sequence of path-like
        The user's unlabelled images (the ones the physics renderer is calibrated on).
    run : path-like
        The run folder (checkpoint, ``log.csv``, previews).
    minutes : float
        Training budget (wall clock); the run stops with a checkpoint when it is spent.
    spacing : 3 floats, optional
        Voxel size (µm) of images that carry none.
    steps : int, optional
        Stop after this many steps if the minutes last that long (default: the preset's, beyond reach).
    resume : bool
        Go on with an interrupted run (a finished one is used as it is).
    progress : bool
        Show progress bars (only on a terminal).
    device : {'auto', 'cpu', 'cuda'}

    Returns
    -------
    Path
        The checkpoint.

    Examples
    --------
    >>> checkpoint = train_refiner(["my_nuclei.tif"], "runs/refiner", minutes=20)  # doctest: +SKIP
    """
    run = Path(run)
    if resume and (run / FINISHED_NAME).is_file():
        return run / CHECKPOINT_NAME
    if resume and run.is_dir() and not (run / CHECKPOINT_NAME).is_file():
        shutil.rmtree(run)  # killed before its first checkpoint: nothing to go on from
    config = with_overrides(resolve_training_config(REFINER_PRESET, [str(i) for i in images]),
                            {"max_minutes": minutes, "device": device, "steps": steps,
                             "data.spacing_um": list(spacing) if spacing is not None else None})
    checkpoint = train_ddpm(config, run, resume=resume and (run / CHECKPOINT_NAME).is_file(), progress=progress)
    write_json_atomic(run / FINISHED_NAME, {"minutes": minutes, "preset": REFINER_PRESET})
    return checkpoint


def generate_refined_like(images: Sequence[str | os.PathLike], out: str | os.PathLike, *, minutes: float = 20.0,
                          labels: Sequence[str | os.PathLike] | None = None, spacing: Sequence[float] | None = None,
                          kind: str = "nuclei", n_samples: int = 8, seed: int = 0, resume: bool = False,
                          progress: bool = True, workers: int = 1, scheduler: str | None = None,
                          device: str = "auto") -> Dataset:
    """Calibrate on ``images``, train the refiner on them for ``minutes``, and generate a refined dataset.

    The dataset ``out`` holds ``calibration.yaml`` (the physics preset) and records the refiner's
    checkpoint (in ``OUT-refiner``, :func:`refiner_folder`) in its manifest. Options as
    :func:`~cellsynth.synthesis.pipeline.generate_like`; ``minutes`` and ``device`` are the training's.

    Parameters
    ----------
    images : sequence of path-like
        Real image files.
    out : path-like
        The new dataset folder (the refiner's run goes to ``OUT-refiner``).
    minutes : float
        The refiner's CPU training budget.
    labels : sequence of path-like, optional
        Their labels.
    spacing : 3 floats, optional
        Voxel size in µm for files without one.
    kind : {'nuclei', 'membranes'}
    n_samples, seed : int
    resume : bool
        Complete an interrupted run (training and generation).
    progress : bool
        Show progress bars (only on a terminal).
    workers : int
        Samples in parallel on a local dask cluster.
    scheduler : str, optional
        Address of a running dask scheduler.
    device : {'auto', 'cpu', 'cuda'}

    Returns
    -------
    Dataset

    Examples
    --------
    >>> dataset = generate_refined_like(["my_nuclei.tif"], "data/like", minutes=20)  # doctest: +SKIP
    """
    out, run = Path(out), refiner_folder(out)
    dataset_started = (out / MANIFEST_NAME).is_file()
    if resume and not dataset_started and not (run / CHECKPOINT_NAME).is_file():
        raise DatasetError(f"nothing to resume in '{out}' (no dataset and no refiner run '{run}'); drop --resume")
    check_dataset_target(out, resume and dataset_started)
    with folder_lock(out, "dataset"):
        checkpoint = train_refiner(images, run, minutes=minutes, spacing=spacing, resume=resume, progress=progress,
                                   device=device)
        return generate_like(images, out, labels=labels, spacing=spacing, kind=kind, n_samples=n_samples, seed=seed,
                             resume=resume and dataset_started, progress=progress, workers=workers,
                             scheduler=scheduler, refiner=checkpoint)
