"""Progress of long loops: a tqdm bar on a terminal; without one (a log, CI, nohup) one logged line every
HIVELM_PROGRESS_EVERY_S seconds (default 30) with the count, rate and ETA, and a last line when the loop ends.
Also the one-line format of a training record (tune's loss per step)."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

EVERY_ENV = "HIVELM_PROGRESS_EVERY_S"
DEFAULT_EVERY_S = 30.0


def every_s() -> float:
    """Seconds between logged progress lines, from HIVELM_PROGRESS_EVERY_S (one line naming it when invalid)."""
    from hivelm.errors import HiveError

    raw = os.environ.get(EVERY_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_EVERY_S
    except ValueError:
        value = -1.0
    if not value > 0 or not math.isfinite(value):
        raise HiveError(f"{EVERY_ENV}={raw!r}: needs a positive number of seconds (default {DEFAULT_EVERY_S:g})")
    return value


class LoggedProgress:
    """`advance(n)` that logs `description: 120/480 it (25%), 2.10 it/s, ETA 02:51` at most every `every`
    seconds (tqdm's own meter formats the line); `clock` is injectable for tests."""

    def __init__(self, total: int | None, description: str, unit: str, every: float,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.description, self.unit, self.every, self.clock = total, description, unit, every, clock
        self.done, self.started = 0, clock()
        self.last = self.started

    def line(self) -> str:
        from tqdm import tqdm

        elapsed = self.clock() - self.started
        bar = "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {rate_fmt}, ETA {remaining}" if self.total \
            else "{desc}: {n_fmt} {unit}, {rate_fmt}, {elapsed} elapsed"
        meter = tqdm.format_meter(self.done, self.total, elapsed, prefix=self.description, unit=self.unit,
                                  bar_format=bar)
        return " ".join(meter.split())  # tqdm pads the rate for a bar that redraws in place

    def __call__(self, n: int = 1) -> None:
        self.done += n
        if self.clock() - self.last >= self.every:
            self.last = self.clock()
            log.info("%s", self.line())

    def close(self) -> None:
        log.info("%s (done)", self.line())


@contextmanager
def progress_bar(total: int | None, description: str, unit: str = "it") -> Iterator[Callable[[int], None]]:
    """Yield an `advance(n)` function: a tqdm bar when stderr is a terminal, else LoggedProgress
    (total None: no ETA)."""
    if not sys.stderr.isatty():
        progress = LoggedProgress(total, description, unit, every_s())
        yield progress
        progress.close()
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=description, unit=unit, dynamic_ncols=True) as bar:
        yield bar.update


def training_line(logs: dict, step: int, max_steps: int) -> str:
    """One training record (transformers' `on_log` dict) as a line: `step 12/40  loss 2.3457  eval_loss 2.1
    learning_rate 1.2e-04  epoch 0.3`: floats to 5 significant digits, in a fixed order."""
    def number(value) -> str:
        return f"{value:.5g}" if isinstance(value, float) else str(value)

    parts = [f"step {step}/{max_steps}"]
    parts += [f"{key} {number(value)}" for key, value in logs.items()
              if isinstance(value, (int, float)) and not isinstance(value, bool)]
    return "  ".join(parts)
