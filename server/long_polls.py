"""A cap on long-polling claims, so that they never hold every WSGI thread (issue 16, item 19).

Each long poll (`POST /api/v1/worker/claim` with `wait`) holds one of waitress's threads for up to
`wait` seconds. With as many polls open as there are threads, a person's page waits until one of
them ends: 9 s with 40 polls against 32 threads. So long polls may hold only some of the threads,
the rest staying free for people; a claim beyond the cap is a plain claim, answered at once (a
job when one is queued, else 204), and its worker asks again later.

The cap follows the thread count (`dalleq serve --threads`), which only the serving code knows:
serving.make_server installs it. An app served otherwise (the test client, another WSGI server)
has no cap unless one is installed.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app

from . import defaults

EXTENSION_KEY = "dalleq_long_polls"


def slots_for_threads(thread_count: int) -> int:
    """How many long polls may wait at once beside `thread_count` WSGI threads: all but a quarter
    of them, and never the last LONG_POLL_FREE_THREADS_MIN (32 threads: 24 polls, 8 free)."""
    free_count = max(defaults.LONG_POLL_FREE_THREADS_MIN, thread_count // 4)
    return max(0, thread_count - free_count)


class LongPollSlots:
    """At most `count` long polls waiting at once; a poll that finds none free does not wait."""

    def __init__(self, count: int):
        self.count = count
        self._free = threading.BoundedSemaphore(count) if count > 0 else None

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """Yields True while holding a slot (the poll may wait), False when all are taken."""
        is_held = self._free is not None and self._free.acquire(blocking=False)
        try:
            yield is_held
        finally:
            if is_held:
                self._free.release()


def install(app: Flask, thread_count: int) -> LongPollSlots:
    """Cap the app's long polls for a server of `thread_count` threads."""
    slots = LongPollSlots(slots_for_threads(thread_count))
    app.extensions[EXTENSION_KEY] = slots
    return slots


@contextmanager
def waiting_allowed() -> Iterator[bool]:
    """Whether this request's long poll may wait: True, holding a slot for it, unless the app's
    cap is reached (always True without a cap)."""
    slots = current_app.extensions.get(EXTENSION_KEY)
    if slots is None:
        yield True
        return
    with slots.slot() as is_held:
        yield is_held
