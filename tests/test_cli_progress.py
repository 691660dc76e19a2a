"""`dalleq generate`'s progress: a bar on a terminal, not one stray line anywhere else."""

import io

from dalleq.progress import progress_callback


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_that_reaches_the_end():
    stream = Terminal()
    with progress_callback(256, "2x2 grid", stream) as on_progress:
        for steps_done in (64, 128, 256):
            on_progress(steps_done, 256)
    drawn = stream.getvalue()
    assert "2x2 grid" in drawn and "100%" in drawn


def test_a_pipe_gets_nothing():
    stream = io.StringIO()
    with progress_callback(256, "2x2 grid", stream) as on_progress:
        assert on_progress is None  # Pipeline.generate then reports no progress at all
    assert stream.getvalue() == ""
