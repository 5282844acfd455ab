"""One exception family for everything a user can get wrong.

The CLI turns any :class:`CellsynthError` into a one-line message on stderr and exit code 2.
Each message says what was wrong and what is accepted.
"""


class CellsynthError(Exception):
    """Base class: bad input, bad config, unreadable file, inconsistent dataset."""


class InputError(CellsynthError, ValueError):
    """An array, spacing or argument that does not meet the documented contract."""


class ConfigError(CellsynthError, ValueError):
    """A YAML config that does not validate (unknown key, wrong type, out of range)."""


class FileFormatError(CellsynthError, OSError):
    """A file that is missing, unreadable, corrupt or of an unsupported format."""


class DatasetError(CellsynthError, RuntimeError):
    """A dataset folder that cannot be created, resumed, verified or exported as asked."""


class MissingDependencyError(CellsynthError, ImportError):
    """An optional dependency (an extra) is not installed."""


class TrainingError(CellsynthError, RuntimeError):
    """Training that cannot go on as configured (e.g. the loss became NaN)."""
