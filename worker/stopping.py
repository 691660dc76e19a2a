"""Stop requests from SIGINT/SIGTERM (STYLE 27, after rq's request_stop / request_force_stop).

The first signal lets the current batch finish and upload; the second hands the leases back
(fail, retryable) so another worker can start at once instead of waiting for them to expire.
While the worker is idle its long poll runs on a thread of its own, so a signal ends the wait at
once without cutting off a claim the server may be answering (runner.Worker.long_poll).

Before that, while the model loads (and the CPU kernels compile), the worker holds nothing, so
there is nothing to finish: within `stops_at_once` the first signal ends the process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stops_at_once(what: str) -> Iterator[None]:
    """Within it, SIGINT or SIGTERM end the process at once, as that signal does by default.

    For a worker that holds nothing yet (it is loading its model, or compiling kernels). The
    handler does not raise: Python may run it inside JAX's C++ (an import, a compilation), and an
    exception unwinding through there aborts the process. So it logs, then lets the signal take
    its default course. A compiler already running finishes on its own.
    """
    def stop_now(signum, _frame):
        log.warning("%s while %s: stopping now (no job was claimed)",
                    signal.Signals(signum).name, what)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    previous_handlers = {signum: signal.signal(signum, stop_now) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)


class StopRequests:
    def __init__(self):
        self.signal_count = 0
        self.event = threading.Event()  # set by the first request
        self.forced_event = threading.Event()  # set by the second

    @property
    def is_requested(self) -> bool:
        return self.signal_count >= 1

    @property
    def is_forced(self) -> bool:
        return self.signal_count >= 2

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.handle)

    def request(self, reason: str = "asked to stop") -> None:
        self.signal_count += 1
        self.event.set()
        if self.signal_count >= 2:
            self.forced_event.set()
        if self.signal_count == 1:
            log.warning("%s: finishing the current batch, then stopping "
                        "(a second signal hands the leases back)", reason)
        else:
            log.warning("%s again: handing the leases back", reason)

    def handle(self, signum, _frame) -> None:
        self.request(signal.Signals(signum).name)

    def sleep(self, seconds: float) -> None:
        """Waits, but returns early at the next stop request: the first, or once stopping, the
        second (so a stopping worker's retries still wait between tries)."""
        (self.forced_event if self.is_requested else self.event).wait(seconds)
