"""Progress bars for long loops: rate and ETA on a terminal, silent when output is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(total: int | None, description: str, unit: str = "it") -> Iterator[Callable[[int], None]]:
    """Yield an `advance(n)` function; draws a tqdm bar only when stderr is a terminal (total None: no ETA)."""
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=description, unit=unit, disable=not sys.stderr.isatty(),
              dynamic_ncols=True) as bar:
        yield bar.update
