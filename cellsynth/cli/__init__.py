"""The ``cellsynth`` command: a thin skin over the library.

:mod:`.arguments` declares the commands and their options, :mod:`.commands` runs each one (one
library call, then what it made, printed). Any :class:`~cellsynth.errors.CellsynthError` and any
usage mistake prints one line to stderr and exits with status 2, having written nothing.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from cellsynth.errors import CellsynthError

EXIT_BAD_INPUT = 2


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"cellsynth: warning: {message}", file=sys.stderr)


def _what_is_kept(args: argparse.Namespace) -> str:
    """What an interrupted or failed command leaves, for its last line."""
    if hasattr(args, "resume"):
        return "finished samples are kept, run again with --resume"
    return "every file is written whole or not at all; run the command again"


def _exhaustion(err: BaseException) -> str | None:
    """One phrase for running out of memory or threads (numpy's message names the array and its size);
    None for any other error."""
    text = " ".join(str(err).split())
    if isinstance(err, MemoryError):
        return f"out of memory ({text[:200]})" if text else "out of memory"
    if "can't start new thread" in text:
        return "cannot start another thread (the memory or process limit is exhausted)"
    if "can't allocate memory" in text or "not enough memory" in text.lower():
        return f"out of memory ({text[:200]})"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 1 verification failed, 2 bad input).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from cellsynth.config import preset_text
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "mine.yaml"
    >>> _ = path.write_text(preset_text("default"))
    >>> main(["config", "check", str(path)])  # doctest: +ELLIPSIS
    /.../mine.yaml: valid
    0
    """
    from cellsynth.cli.arguments import build_parser

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    args.quiet = getattr(args, "quiet", False)
    warnings.showwarning = _show_warning
    try:
        return args.func(args) or 0  # a handler returns nothing on success, or an exit status
    except CellsynthError as err:
        message = " ".join(str(err).split())
        print(f"cellsynth: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:  # the file system, not the input: disk full, read-only, a folder removed under us
        where = f" ('{err.filename}')" if err.filename else ""
        print(f"cellsynth: error: {err.strerror or err}{where}; {_what_is_kept(args)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (MemoryError, RuntimeError) as err:  # exhaustion: say what, how much, and what to change
        problem = _exhaustion(err)
        if problem is None:
            raise
        print(f"cellsynth: error: {problem}; use a smaller volume (volume.shape, a crop) or fewer --workers, or "
              f"free memory; {_what_is_kept(args)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"cellsynth: interrupted; {_what_is_kept(args)}", file=sys.stderr)
        return 130
