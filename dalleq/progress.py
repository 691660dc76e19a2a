"""The sampling progress of `dalleq generate`: a bar on a terminal, silence anywhere else.

click.progressbar hides its bar when its stream is not a terminal but still prints the bare
label once, a stray line in a log or a pipe; so off a terminal no progress is reported at all
and the closing "wrote ..." line says how long it took.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

import click

ProgressCallback = Callable[[int, int], None]  # (steps done, steps in all)


@contextlib.contextmanager
def progress_callback(step_count: int, label: str,
                      stream: TextIO | None = None) -> Iterator[ProgressCallback | None]:
    """Yields an on_progress for Pipeline.generate drawing a bar on stream (stderr), or None."""
    stream = stream if stream is not None else sys.stderr
    if not stream.isatty():
        yield None
        return
    with click.progressbar(length=step_count, label=label, file=stream) as bar:
        yield lambda steps_done, _step_count: bar.update(steps_done - bar.pos)
