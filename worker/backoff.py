"""Waits between retries: they double up to a cap and reset after a success (STYLE 26).

Each wait is jittered ("equal jitter": half fixed, half random) so several workers that lost
the same server do not all come back in the same instant.
"""

import random

from . import defaults


class Backoff:
    def __init__(self, first_seconds: float = defaults.BACKOFF_FIRST_SECONDS,
                 max_seconds: float = defaults.BACKOFF_MAX_SECONDS, rng: random.Random | None = None):
        self.first_seconds = first_seconds
        self.max_seconds = max_seconds
        self.rng = rng or random.Random()
        self.failure_count = 0

    def next_seconds(self) -> float:
        """The wait before the next try; each call counts one more failure."""
        ceiling = min(self.max_seconds, self.first_seconds * 2 ** min(self.failure_count, 30))
        self.failure_count += 1
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.failure_count = 0
