"""Stop requests from SIGINT/SIGTERM (STYLE 27, after rq's request_stop / request_force_stop).

The first signal lets the current batch finish and upload; the second hands the leases back
(fail, retryable) so another worker can start at once instead of waiting for them to expire.
While the worker is idle its long poll runs on a thread of its own, so a signal ends the wait at
once without cutting off a claim the server may be answering (runner.Worker.long_poll).
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)


class StopRequests:
    def __init__(self):
        self.signal_count = 0
        self.event = threading.Event()

    @property
    def is_requested(self) -> bool:
        return self.signal_count >= 1

    @property
    def is_forced(self) -> bool:
        return self.signal_count >= 2

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.handle)

    def request(self, reason: str = "asked to stop") -> None:
        self.signal_count += 1
        self.event.set()
        if self.signal_count == 1:
            log.warning("%s: finishing the current batch, then stopping "
                        "(a second signal hands the leases back)", reason)
        else:
            log.warning("%s again: handing the leases back", reason)

    def handle(self, signum, _frame) -> None:
        self.request(signal.Signals(signum).name)

    def sleep(self, seconds: float) -> None:
        """Waits, but returns early when a stop is requested."""
        self.event.wait(seconds)
