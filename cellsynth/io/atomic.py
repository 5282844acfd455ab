"""Atomic writes: every file goes to a hidden ``*.partial`` name in its folder and is moved into
place with :func:`os.replace`, so a reader never sees a partial file."""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

PARTIAL_SUFFIX = ".partial"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success move it onto ``final``.

    The temporary name is hidden and ends in ``.partial``, so globs such as ``*.tif`` never see it
    and :func:`remove_partials` can sweep what a killed process left behind. Works for files and
    folders (a zarr store). On any exception the temporary is removed and ``final`` is untouched.
    Temporaries of ``final`` that a killed writer left (SIGKILL runs no cleanup) are removed first.

    Parameters
    ----------
    final : path-like
        Where the file or folder goes; its folder must exist.
    """
    final = Path(final)
    for stale in final.parent.glob(f".{glob.escape(final.name)}.*{PARTIAL_SUFFIX}"):
        _remove(stale)
    tmp = final.parent / f".{final.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
    try:
        yield tmp
        if tmp.is_dir() and final.is_dir() and any(final.iterdir()):
            # os.replace cannot replace a non-empty folder: move the old one aside first.
            old = final.parent / f".{final.name}.{secrets.token_hex(4)}.old{PARTIAL_SUFFIX}"
            os.replace(final, old)
            os.replace(tmp, final)
            _remove(old)
        else:
            os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Destination file.
    data : bytes
        Its content.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def jsonable(value):
    """``value`` with numpy scalars and arrays as Python types and non-finite floats as None (for JSON).

    Parameters
    ----------
    value : object
        Nested dicts, lists, tuples, numpy scalars and arrays.

    Returns
    -------
    object
        The same structure in plain Python types.

    Examples
    --------
    >>> import numpy as np
    >>> jsonable({"a": np.float32(0.5), "b": [np.nan, np.int64(2)]})
    {'a': 0.5, 'b': [None, 2]}
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json_atomic(path: str | os.PathLike, obj: object) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Destination file.
    obj : object
        JSON-serialisable (see :func:`jsonable`).
    """
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def remove_partials(folder: str | os.PathLike) -> int:
    """Delete the ``*.partial`` temporaries an interrupted writer left below ``folder``.

    Parameters
    ----------
    folder : path-like
        Searched recursively.

    Returns
    -------
    int
        How many were removed.
    """
    found = sorted(Path(folder).rglob(f".*{PARTIAL_SUFFIX}"), key=lambda p: -len(p.parts))
    for path in found:
        _remove(path)
    return len(found)
