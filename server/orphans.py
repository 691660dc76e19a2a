"""Sweeping result folders that no job points to (issue 16, item 13), and previews of jobs that
no longer run.

storage.py writes a result into a new folder before the job points at it, so a server killed
mid-upload (or between a delete's commit and its rmtree) leaves a folder in DATA_DIR/jobs/ that
nothing will ever serve or remove. The sweep removes those, at start and then periodically, but
only once they are older than defaults.ORPHAN_MIN_AGE_SECONDS: a young folder may belong to an
upload still on its way to its commit. A job's live preview is deleted when the job stops
running; a server killed between that commit and the delete leaves the file, and the sweep removes
it too (previews.py), once it is as old.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import select
from sqlalchemy.engine import Engine

from . import defaults
from .models import JobStatus, jobs_table
from .previews import PreviewStore
from .storage import Storage

log = logging.getLogger(__name__)

NAMES_PER_QUERY = 500  # well under SQLite's bound-parameter limit


class OrphanSweeper:
    def __init__(self, engine: Engine, storage: Storage, previews: PreviewStore | None = None,
                 min_age_seconds: float = defaults.ORPHAN_MIN_AGE_SECONDS):
        self.engine = engine
        self.storage = storage
        self.previews = previews
        self.min_age_seconds = min_age_seconds
        self.stopping = threading.Event()

    def sweep(self, now_seconds: float | None = None) -> int:
        """Remove every folder older than min_age_seconds that no job names; returns how many."""
        now_seconds = time.time() if now_seconds is None else now_seconds
        old_names = sorted(self._old_folder_names(now_seconds))
        referenced = set()
        with self.engine.connect() as connection:
            for start in range(0, len(old_names), NAMES_PER_QUERY):
                names = old_names[start:start + NAMES_PER_QUERY]
                referenced.update(connection.execute(
                    select(jobs_table.c.files_dir).where(jobs_table.c.files_dir.in_(names))
                ).scalars())
        orphans = [name for name in old_names if name not in referenced]
        for name in orphans:
            log.info("removing %s from the data dir: no job points to it", name)
            self.storage.remove(name)
        return len(orphans) + self.sweep_previews(now_seconds)

    def sweep_previews(self, now_seconds: float) -> int:
        """Remove the old preview files of jobs that are not running (or gone); returns how many."""
        if self.previews is None:
            return 0
        old = self.previews.files_older_than(now_seconds - self.min_age_seconds)
        job_ids = sorted(old)
        running = set()
        with self.engine.connect() as connection:
            for start in range(0, len(job_ids), NAMES_PER_QUERY):
                running.update(connection.execute(
                    select(jobs_table.c.id).where(
                        jobs_table.c.id.in_(job_ids[start:start + NAMES_PER_QUERY]),
                        jobs_table.c.status == JobStatus.RUNNING.value,
                    )
                ).scalars())
        stale = [job_id for job_id in job_ids if job_id not in running]
        for job_id in stale:
            log.info("removing the preview of job %s: it no longer runs", job_id)
            old[job_id].unlink(missing_ok=True)
        return len(stale)

    def start(self, every_seconds: float = defaults.ORPHAN_SWEEP_EVERY_SECONDS) -> OrphanSweeper:
        """Sweep now, then every every_seconds on a daemon thread until stop()."""
        self.sweep()
        threading.Thread(target=self._sweep_periodically, args=(every_seconds,),
                         name="orphan-sweeper", daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()

    def _sweep_periodically(self, every_seconds: float) -> None:
        while not self.stopping.wait(every_seconds):
            try:
                self.sweep()
            except Exception:  # a database outage must not end the sweeps
                log.exception("sweeping orphaned result folders failed; trying again later")

    def _old_folder_names(self, now_seconds: float) -> list[str]:
        if not self.storage.root.is_dir():
            return []
        names = []
        for path in self.storage.root.iterdir():
            try:
                if path.is_dir() and now_seconds - path.stat().st_mtime > self.min_age_seconds:
                    names.append(path.name)
            except OSError:  # removed while we looked (a delete)
                continue
        return names
