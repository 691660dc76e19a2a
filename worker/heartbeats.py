"""Keeps every lease this worker holds alive, from a thread of its own, and reports progress.

Generation runs in long compiled chunks, so the loop cannot be trusted to beat on time; this
thread beats for it: as soon as progress moves (at most every HEARTBEAT_MIN_GAP_SECONDS, so the
phone's bar moves) and otherwise every quarter lease. It also beats for finished results still
waiting to upload, so a short server outage does not cost their leases. What the answers say
(cancel requested, lease lost) is kept per job for the loop to read.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from . import defaults
from .client import Claim, QueueClient
from .errors import JobGone, LeaseLost, WorkerError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class HeldLease:
    claim: Claim
    interval_seconds: float
    progress: float = 0.0
    sent_progress: float = -1.0
    sent_at: float = float("-inf")
    is_cancel_requested: bool = False
    is_lost: bool = False


def beat_interval_seconds(claim: Claim, now: datetime) -> float:
    lease_seconds = max(1.0, (claim.lease_expires_at - now).total_seconds())
    return min(defaults.HEARTBEAT_MAX_SECONDS, lease_seconds * defaults.HEARTBEAT_SHARE_OF_LEASE)


class Heartbeats:
    def __init__(self, make_client: Callable[[], QueueClient],
                 min_gap_seconds: float = defaults.HEARTBEAT_MIN_GAP_SECONDS):
        self.make_client = make_client
        self.min_gap_seconds = min_gap_seconds
        self.held: dict[str, HeldLease] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> Heartbeats:
        self.thread = threading.Thread(target=self._run, name="heartbeats", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def hold(self, claim: Claim) -> None:
        interval = beat_interval_seconds(claim, datetime.now(timezone.utc))
        with self.lock:
            self.held[claim.job_id] = HeldLease(claim, interval, sent_at=time.monotonic())

    def release(self, job_id: str) -> None:
        with self.lock:
            self.held.pop(job_id, None)

    def set_progress(self, job_id: str, progress: float) -> None:
        with self.lock:
            if job_id in self.held:
                self.held[job_id].progress = progress
        self.wake.set()

    def is_cancel_requested(self, job_id: str) -> bool:
        with self.lock:
            held = self.held.get(job_id)
            return held is not None and held.is_cancel_requested

    def is_lost(self, job_id: str) -> bool:
        with self.lock:
            held = self.held.get(job_id)
            return held is not None and held.is_lost

    def _due(self, now: float) -> list[HeldLease]:
        with self.lock:
            return [held for held in self.held.values() if not held.is_lost and (
                now - held.sent_at >= held.interval_seconds
                or (held.progress != held.sent_progress
                    and now - held.sent_at >= self.min_gap_seconds))]

    def _run(self) -> None:
        client = self.make_client()
        try:
            while not self.stopping.is_set():
                for held in self._due(time.monotonic()):
                    self._beat(client, held)
                self.wake.wait(self.min_gap_seconds)
                self.wake.clear()
        finally:
            client.close()

    def _beat(self, client: QueueClient, held: HeldLease) -> None:
        progress = held.progress
        job_id = held.claim.job_id
        try:
            beat = client.heartbeat(job_id, held.claim.lease, progress)
        except (LeaseLost, JobGone) as error:
            log.warning("job %s: lease lost (%s)", job_id, error)
            with self.lock:
                held.is_lost = True
            return
        except WorkerError as error:
            log.warning("job %s: heartbeat failed, will retry: %s", job_id, error)
            held.sent_at = time.monotonic() - held.interval_seconds + self.min_gap_seconds * 4
            return
        with self.lock:
            held.sent_at = time.monotonic()
            held.sent_progress = progress
            if beat.is_cancel_requested and not held.is_cancel_requested:
                log.info("job %s: cancel requested", job_id)
                held.is_cancel_requested = True
