"""Tells the server what this worker is doing (working, idle, paused and why), for the queue page.

`POST /api/v1/worker/status` (issue 19). A report is sent when the state or its reason changes and
again every STATUS_REPEAT_SECONDS while it holds, so the page can tell a worker gone quiet from
one that stopped, even while a paused worker sends no claims. A server without the endpoint
(404) is told once in the log and not asked again; any other failure is only logged: the state
is a courtesy, never a reason to stop serving the queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from . import defaults
from .errors import WorkerError

log = logging.getLogger(__name__)

WORKING, IDLE, PAUSED = "working", "idle", "paused"


class StatusReporter:
    def __init__(self, client: Callable[[], object], worker_name: str, models: list[str], *,
                 clock: Callable[[], float] = time.monotonic,
                 repeat_seconds: float = defaults.STATUS_REPEAT_SECONDS):
        """client: returns the QueueClient to post with (the calling thread's)."""
        self.client = client
        self.worker_name = worker_name
        self.models = list(models)
        self.clock = clock
        self.repeat_seconds = repeat_seconds
        self.is_supported = True
        self.last_sent: tuple[str, str | None] | None = None
        self.last_sent_at = 0.0

    def report(self, state: str, reason: str | None = None) -> None:
        """Sends the state when it changed or was last sent repeat_seconds ago."""
        if not self.is_supported:
            return
        if reason is not None:
            reason = reason[:defaults.STATUS_REASON_MAX_CHARS]
        now = self.clock()
        if (state, reason) == self.last_sent and now - self.last_sent_at < self.repeat_seconds:
            return
        try:
            is_supported = self.client().post_status(self.worker_name, state, reason,
                                                     self.models)
        except WorkerError as error:
            log.debug("could not report the state %s: %s", state, error)
            return
        if not is_supported:
            log.info("the server has no worker status endpoint (an older server): this "
                     "worker's state is not shown on its queue page")
            self.is_supported = False
            return
        self.last_sent, self.last_sent_at = (state, reason), now
