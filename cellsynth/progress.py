"""A progress bar over the named phases of a long call (calibration, a realism judge), on tqdm.

Generation and export count samples; a calibration or a judge is a fixed list of steps of uneven
length, so its bar counts phases and shows the one running and the seconds spent.

Examples
--------
>>> with Phases("calibrate", ["camera", "PSF"], enabled=False) as phase:
...     phase("camera")
...     phase("PSF")
"""

from __future__ import annotations

from collections.abc import Sequence

from tqdm.auto import tqdm


class Phases:
    """A tqdm bar of ``len(names)`` steps; calling it with the next name marks the previous one done.

    Parameters
    ----------
    what : str
        The call shown before the phase's name (``"calibrate"``).
    names : sequence of str
        The phases in order; the bar's total.
    enabled : bool
        False: silent (``-q``). True: a bar where stderr is a terminal, as tqdm decides.
    """

    def __init__(self, what: str, names: Sequence[str], enabled: bool = True):
        self.what, self.names, self.started = what, list(names), 0
        self.bar = tqdm(total=len(self.names), desc=what, unit="phase", disable=True if not enabled else None,
                        bar_format="{desc}: {n_fmt}/{total_fmt} phases [{elapsed}]")

    def __call__(self, name: str) -> None:
        if name not in self.names:
            raise ValueError(f"unknown phase {name!r}; declared: {', '.join(self.names)}")
        self.bar.update(self.names.index(name) - self.bar.n)
        self.bar.set_description_str(f"{self.what}: {name}")

    def __enter__(self) -> Phases:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.bar.update(len(self.names) - self.bar.n)
        self.bar.close()
