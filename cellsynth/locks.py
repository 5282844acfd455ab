"""One writer per output: an advisory lock beside every dataset or export folder being written.

``cellsynth generate OUT`` (or an export, a split, a diversification) holds ``.OUT.cellsynth-lock``
in OUT's parent folder while it writes. A second writer is refused in one line naming the holder
(PID, host, start time, command). The lock is an ``flock`` on that file, so the kernel releases it
when the holder dies, even by ``kill -9``: a lock file left behind is stale, and the next writer
takes it over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from cellsynth.errors import DatasetError

LOCK_SUFFIX = ".cellsynth-lock"
#: Lock files this process holds (a process never refuses itself).
_HELD: set[Path] = set()


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of ``target``: hidden, beside it, named after its resolved path.

    Examples
    --------
    >>> lock_path("data/nuclei").name
    '.nuclei.cellsynth-lock'
    """
    target = Path(os.path.abspath(target))
    with contextlib.suppress(OSError):
        target = target.resolve()
    return target.parent / f".{target.name}{LOCK_SUFFIX}"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return (f"process {info['pid']} on {info['host']} since {info['since']} "
                f"({' '.join(str(info['command']).split())[:80]})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def check_unlocked(target: str | os.PathLike, what: str = "folder") -> None:
    """Refuse, in one line, a ``target`` another process is writing now (its lock is held).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "ds"
    >>> with folder_lock(folder):
    ...     check_unlocked(folder, "dataset")  # the same process holds it: no refusal
    """
    path = lock_path(target)
    if not path.is_file() or path in _HELD:
        return
    try:
        handle = open(path, "rb")
    except OSError:
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatasetError(f"{what} '{target}' is being written by {_holder(path)}; wait until it ends "
                               f"(its lock: '{path}')") from None


@contextlib.contextmanager
def folder_lock(target: str | os.PathLike, what: str = "folder") -> Iterator[Path]:
    """Hold the write lock of ``target`` (a dataset or export folder) for the ``with`` block.

    Raises
    ------
    DatasetError
        If another live process holds it: one line with its PID, host, start and command.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "ds"
    >>> with folder_lock(folder, "dataset") as lock:
    ...     lock.exists()
    True
    >>> lock.exists()
    False
    """
    path = lock_path(target)
    if path in _HELD:  # re-entered by the same process (a command that calls another)
        yield path
        return
    while True:
        handle = open(path, "a+b")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise DatasetError(f"{what} '{target}' is being written by {_holder(path)}; wait until it ends, or "
                               f"write elsewhere (its lock: '{path}')") from None
        try:  # the holder before us may have removed the file between our open and our flock
            same = os.fstat(handle.fileno()).st_ino == path.stat().st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)[:200]}
    handle.truncate(0)
    handle.write(json.dumps(info).encode())
    handle.flush()
    _HELD.add(path)
    try:
        yield path
    finally:
        _HELD.discard(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        handle.close()
