"""The queue's verbs: submit, claim (and its long poll), heartbeat (and the preview post), finish
(and the result post), fail, expire, cancel, delete.

Each verb is one transaction built around one conditional UPDATE (or INSERT/DELETE) whose WHERE
clause carries everything the verb depends on, the lease included, and the verb then checks that it
changed the row it meant to (STYLE 22, after huey's SqliteStorage.dequeue). That is what makes a
job impossible to claim twice, even with several server processes on one PostgreSQL database, and
what turns a late or duplicate worker call into a 409 instead of an overwrite (shared/API.md).

A running job may have a live preview (server/previews.py); every verb that ends a running attempt
clears its steps in the same UPDATE and drops its file after the commit.

The verbs that end a job done or failed (finish, fail, expire) hand its row to `on_job_ended`
after the commit, once per job: the push sender (server/push_sender.py) listens there.
"""

import dataclasses
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta

from sqlalchemy import (
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from . import idempotency, ranking, sightings
from .clock import iso, utcnow
from .config import Settings
from .defaults import CLAIM_RECHECK_SECONDS, EXPIRE_EVERY_SECONDS
from .errors import Conflict, KeyReused, NotFound, StaleLease
from .idempotency import SubmissionKey
from .models import JobStatus, images_table, jobs_table
from .previews import PreviewStore
from .statements import (
    QUEUED_UP_TO,
    SUBMIT_STATEMENT,
    claim_oldest,
    claim_seqs,
    list_values,
    oldest_queued,
)
from .storage import Storage

log = logging.getLogger(__name__)
jobs = jobs_table

ID_BYTES = 9  # 12 URL-safe characters
LEASE_BYTES = 18
# A job its result ended: done, or canceled when the cancel was asked for first (finish()).
RESULT_STATUSES = (JobStatus.DONE.value, JobStatus.CANCELED.value)

def _place(job: dict) -> dict:
    """QUEUED_UP_TO's parameters for `job`: its place among the queued jobs of its model."""
    return {"seq": job["seq"], "model": job["model"]}


def new_job_id() -> str:
    return secrets.token_urlsafe(ID_BYTES)


@dataclasses.dataclass(frozen=True)
class Upload:
    """A result's checked files and meta, as post_result stores them."""

    grid_png: bytes
    tile_pngs: list[bytes]
    sizes: list[tuple[int, int]]  # (width, height) of the grid, then of each tile
    meta: dict | None


class JobQueue:
    """The verbs over one database; `now` is an argument everywhere so tests control time."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        on_job_ended: Callable[[dict], None] | None = None,
    ):
        self.engine = engine
        self.settings = settings
        self.on_job_ended = on_job_ended or (lambda job: None)
        self.previews = PreviewStore(settings.data_dir)
        self._last_expire: datetime | None = None
        # Long-polling claims wait on this; submit() wakes them (other processes are caught by the
        # pollers' periodic re-check).
        self.job_submitted = threading.Condition()
        # SQLite has one writer at a time. Threads of this process queue on a lock, woken the
        # moment it is free, instead of polling in SQLite's busy handler, which sleeps up to
        # 100 ms between tries (that sleeping was most of the p99 under load in
        # bench/bench_server.py). Other processes still meet the busy timeout; PostgreSQL needs
        # neither.
        self._write_lock = threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()

    @contextmanager
    def _transaction(self):
        """One write transaction: commits on success, rolls back on any exception. The connection
        is taken and given back under the write lock, so on SQLite each writer reuses the one that
        wrote last, its page cache warm (db.py)."""
        with self._write_lock, self.engine.begin() as connection:
            yield connection

    # -- people ---------------------------------------------------------------------------
    def submit(self, fields: dict, *, parent_id: str | None = None, now: datetime | None = None):
        """Queue a new job from validated fields (server/validation.py).

        Returns its row with `position`, its place in the queue.
        """
        now = now or utcnow()
        with self._transaction() as connection:
            job = self._insert_job(connection, fields, parent_id, now)
        self._announce(job)
        return job

    def submit_once(
        self,
        fields: dict,
        key: SubmissionKey | None,
        *,
        parent_id: str | None = None,
        now: datetime | None = None,
    ) -> tuple[dict, bool]:
        """submit() under an idempotency key (server/idempotency.py). Returns (job, created).

        The job a live key already made comes back with created False; a key sent with another
        request raises KeyReused. Without a key every call queues. Two requests racing with one
        key make one job: both INSERT the key in the job's transaction, the primary key lets one
        commit, and the other's transaction (its job with it) rolls back before it answers with
        the winner's job.
        """
        now = now or utcnow()
        if key is None:
            return self.submit(fields, parent_id=parent_id, now=now), True
        existing = self._job_for_key(key, now)
        if existing is not None:
            return existing, False
        try:
            with self._transaction() as connection:
                # A write first, so on SQLite the transaction holds the write lock from its start.
                connection.execute(idempotency.DELETE_EXPIRED, {"cutoff": idempotency.cutoff(now)})
                job = self._insert_job(connection, fields, parent_id, now)
                key_row = {"key": key.key, "request_hash": key.request_hash, "job_seq": job["seq"]}
                connection.execute(idempotency.INSERT_KEY, dict(key_row, created_at=now))
        except IntegrityError:
            existing = self._job_for_key(key, now)
            if existing is None:  # the winner's job was deleted in the meantime
                raise Conflict("another request with this Idempotency-Key is in progress; retry")
            log.info("job %s: a concurrent request with its key answered", existing["id"])
            return existing, False
        self._announce(job)
        return job, True

    def _insert_job(self, connection, fields: dict, parent_id: str | None, now: datetime) -> dict:
        """INSERT one queued job; returns its row with `position`."""
        values = dict(
            fields,
            id=new_job_id(),
            status=JobStatus.QUEUED.value,
            progress=0.0,
            attempts=0,
            parent_id=parent_id,
            created_at=now,
            cancel_requested=False,
        )
        job = connection.execute(SUBMIT_STATEMENT, values).one()._asdict()
        # Counted in the same transaction, so the answer matches the queue the job joined.
        job["position"] = connection.execute(QUEUED_UP_TO, _place(job)).scalar_one()
        return job

    def _announce(self, job: dict) -> None:
        """Wake the long polls of this process and log the new job."""
        with self.job_submitted:
            self.job_submitted.notify_all()
        log.info("job %s submitted (model %s, grid %d)", job["id"], job["model"], job["grid"])

    def _job_for_key(self, key: SubmissionKey, now: datetime) -> dict | None:
        """The job a live key made, with its current `position`; None when the key is unused or
        expired; KeyReused when the key came with another request."""
        params = {"key": key.key, "cutoff": idempotency.cutoff(now)}
        with self.engine.connect() as connection:
            row = connection.execute(idempotency.JOB_FOR_KEY, params).one_or_none()
            if row is None:
                return None
            job = row._asdict()
            if job.pop("request_hash") != key.request_hash:
                raise KeyReused(
                    f"this {idempotency.HEADER} was first sent with another request; "
                    "use a new key for a new submission"
                )
            is_queued = job["status"] == JobStatus.QUEUED.value
            position = connection.execute(QUEUED_UP_TO, _place(job)).scalar_one()
            job["position"] = position if is_queued else None
        log.info("job %s returned again for its idempotency key", job["id"])
        return job

    def cancel(self, job_id: str, *, now: datetime | None = None):
        """Cancel a queued job at once; ask a running one's worker to stop at its next heartbeat."""
        now = now or utcnow()
        with self._transaction() as connection:
            row = connection.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == JobStatus.QUEUED.value)
                .values(status=JobStatus.CANCELED.value, finished_at=now)
                .returning(*jobs.c)
            ).one_or_none()
            if row is None:
                row = connection.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING.value)
                    .values(cancel_requested=True)
                    .returning(*jobs.c)
                ).one_or_none()
            if row is None:
                current = self._require(connection, job_id)
                raise Conflict(
                    f"job {job_id} is already {current.status}", code="already_finished"
                )
        log.info("job %s cancel: now %s", job_id, row.status)
        return row._asdict()

    def set_starred(self, job_id: str, is_starred: bool) -> dict:
        """Star or unstar a job, whatever its status; returns its row with `position`."""
        with self._transaction() as connection:
            row = connection.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(starred=is_starred)
                .returning(*jobs.c)
            ).one_or_none()
            if row is None:
                raise NotFound(f"no job {job_id}")
            job = row._asdict()
            is_queued = job["status"] == JobStatus.QUEUED.value
            position = connection.execute(QUEUED_UP_TO, _place(job)).scalar_one()
            job["position"] = position if is_queued else None
        log.info("job %s %s", job_id, "starred" if is_starred else "unstarred")
        return job

    def delete(self, job_id: str) -> str | None:
        """Delete a job and its image rows; returns its files folder for the caller to remove."""
        with self._transaction() as connection:
            row = connection.execute(
                delete(jobs).where(jobs.c.id == job_id).returning(jobs.c.seq, jobs.c.files_dir)
            ).one_or_none()
            if row is None:
                raise NotFound(f"no job {job_id}")
            # Foreign keys cascade on both backends; this keeps SQLite files opened elsewhere honest.
            connection.execute(delete(images_table).where(images_table.c.job_seq == row.seq))
        self.previews.remove(job_id)  # after the commit, as every verb that ends a job
        log.info("job %s deleted", job_id)
        return row.files_dir

    # -- workers --------------------------------------------------------------------------
    def claim(self, worker: str, models: list[str], max_jobs: int = 1, *, now=None) -> list[dict]:
        """Lease up to max_jobs of the oldest queued jobs for these models; [] when none."""
        now = now or utcnow()
        self.expire_if_due(now=now)
        if not models:
            return []
        lease_values = {
            "claim_lease_prefix": secrets.token_urlsafe(LEASE_BYTES) + ".",
            "claim_expires_at": now + self._lease_length,
            "claim_worker": worker,
            "claim_now": now,
        }
        pick_values = {**list_values("model", models), "max_jobs": max_jobs}
        with self._transaction() as connection:
            if self.engine.dialect.name == "sqlite":
                claim = claim_oldest(len(models))
                rows = connection.execute(claim, {**pick_values, **lease_values}).all()
            else:
                seqs = connection.execute(oldest_queued(len(models)), pick_values).scalars().all()
                if not seqs:
                    return []
                claim = claim_seqs(len(seqs))
                rows = connection.execute(claim, {**list_values("seq", seqs), **lease_values}).all()
        claimed = sorted((row._asdict() for row in rows), key=lambda job: job["seq"])
        for job in claimed:
            log.info("job %s claimed by %s (attempt %d)", job["id"], worker, job["attempts"] + 1)
        return claimed

    def claim_waiting(
        self,
        worker: str,
        models: list[str],
        max_jobs: int = 1,
        wait_seconds: float = 0.0,
        *,
        now=None,
    ) -> list[dict]:
        """claim(), and while nothing is queued for these models, wait up to wait_seconds for a
        submit (a long poll): a worker hears of a new job at once without polling. The request
        is recorded as a sighting of the worker (server/sightings.py) first, once per call."""
        with self._transaction() as connection:
            sightings.record_claim(connection, worker, models, now or utcnow())
        deadline = time.monotonic() + wait_seconds
        while True:
            claimed = self.claim(worker, models, max_jobs, now=now)
            remaining = deadline - time.monotonic()
            if claimed or remaining <= 0:
                return claimed
            with self.job_submitted:
                self.job_submitted.wait(min(remaining, CLAIM_RECHECK_SECONDS))

    def heartbeat(self, job_id: str, lease: str, progress: float, *, now=None) -> dict:
        """Record progress and extend the lease; returns the row (with cancel_requested)."""
        now = now or utcnow()
        with self._transaction() as connection:
            row = connection.execute(
                update(jobs)
                .where(self._holds(job_id, lease, now))
                .values(progress=progress, lease_expires_at=now + self._lease_length)
                .returning(*jobs.c)
            ).one_or_none()
            if row is None:
                self._raise_stale(connection, job_id, now)
        return row._asdict()

    def post_preview(self, job_id: str, lease: str, steps: int, image: bytes, *, now=None) -> dict:
        """A heartbeat that brings a preview: extend the lease and keep `image` as the job's
        preview unless the one stored was made at more steps. Returns the row.

        The file is written inside the transaction, after the UPDATE that holds the row: a verb
        ending the job commits after it, then drops the file, so no preview outlives its job.
        """
        now = now or utcnow()
        with self._transaction() as connection:
            row = connection.execute(
                update(jobs)
                .where(self._holds(job_id, lease, now))
                .values(lease_expires_at=now + self._lease_length)
                .returning(*jobs.c)
            ).one_or_none()
            if row is None:
                self._raise_stale(connection, job_id, now)
            if row.preview_steps is not None and steps < row.preview_steps:
                log.info("job %s: a preview at %d steps came after one at %d; kept the newer",
                         job_id, steps, row.preview_steps)
                return row._asdict()
            connection.execute(update(jobs).where(jobs.c.id == job_id).values(preview_steps=steps))
            self.previews.save(job_id, image)
        return dict(row._asdict(), preview_steps=steps)

    def finish(self, job_id, lease, files_dir, images: list[dict], meta, *, now=None):
        """Mark the job done with its stored files, or canceled when a cancel was asked for
        before the result arrived (the cancel wins: the job takes no files). Returns (row,
        took_files).

        took_files is False when the job did not take files_dir: it was canceled, or this lease
        already finished the job (a repeated post: 200, nothing changes). The caller removes the
        folder then. Any other lease that is not current gets StaleLease.
        """
        now = now or utcnow()
        is_canceled = jobs.c.cancel_requested
        with self._transaction() as connection:
            row = connection.execute(
                update(jobs)
                .where(self._holds(job_id, lease, now))
                .values(
                    status=case(
                        (is_canceled, JobStatus.CANCELED.value), else_=JobStatus.DONE.value
                    ),
                    progress=case((is_canceled, jobs.c.progress), else_=1.0),
                    finished_at=now,
                    files_dir=case((is_canceled, None), else_=files_dir),
                    result_meta=case(
                        (is_canceled, None),
                        else_=json.dumps(meta) if meta is not None else None,
                    ),
                    error=None,
                    preview_steps=None,
                )
                .returning(*jobs.c)
            ).one_or_none()
            if row is None:
                current = self.finished_by(connection, job_id, lease)
                if current is not None:
                    return current, False
                self._raise_stale(connection, job_id, now)
            if images and row.status == JobStatus.DONE.value:
                connection.execute(
                    insert(images_table), [dict(image, job_seq=row.seq) for image in images]
                )
        self.previews.remove(job_id)
        if row.status == JobStatus.CANCELED.value:
            log.info("job %s canceled: its result arrived after the cancel", job_id)
            return row._asdict(), False
        log.info("job %s done (%d files in %s)", job_id, len(images), files_dir)
        self.on_job_ended(row._asdict())
        return row._asdict(), True

    def finished_by(self, connection, job_id: str, lease: str) -> dict | None:
        """The job's row when this lease already finished it (done, or canceled by its result),
        else None."""
        row = connection.execute(
            select(*jobs.c).where(
                jobs.c.id == job_id, jobs.c.lease == lease, jobs.c.status.in_(RESULT_STATUSES)
            )
        ).one_or_none()
        return None if row is None else row._asdict()

    def post_result(
        self,
        job_id: str,
        lease: str,
        read_upload: Callable[[dict], Upload],
        storage: Storage,
        *,
        now=None,
    ) -> dict:
        """Store a running job's result and mark it done; returns the job's row.

        A repeated post by the lease that finished the job changes nothing and its files are not
        read; any other lease that is not current (expired ones included) gets StaleLease.
        read_upload(job) checks the request's files against the job (InvalidInput). They are
        written to a new folder, and fsynced with it, before the commit that points the job at it
        (storage.py): a power cut never leaves a done job without its files. The folder is removed
        again when the job does not take it. A job whose cancel was asked for ends `canceled`
        without them.
        """
        now = now or utcnow()
        job = self._job_for_result(job_id, lease, now)
        if job["status"] != JobStatus.RUNNING.value:
            return job
        upload = read_upload(job)
        if job["cancel_requested"]:  # a cancel is never taken back: finish() cancels the job
            files_dir, image_rows = None, []
        else:
            scores = ranking.scores_from_meta(upload.meta, len(upload.tile_pngs))
            files_dir, image_rows = storage.save_result(
                job, upload.grid_png, upload.tile_pngs, upload.sizes, ranking.best_index(scores)
            )
        try:
            finished, took_files = self.finish(
                job_id, lease, files_dir, image_rows, upload.meta, now=now
            )
        except Exception:
            storage.remove(files_dir)
            raise
        if not took_files:
            storage.remove(files_dir)
        return finished

    def _job_for_result(self, job_id: str, lease: str, now: datetime) -> dict:
        """The job's row while `lease` is its current, unexpired lease or the one whose result
        finished it; NotFound/StaleLease otherwise."""
        with self.engine.connect() as connection:
            row = self._require(connection, job_id)
        is_current = row.status == JobStatus.RUNNING.value and row.lease_expires_at >= now
        if row.lease != lease or not (is_current or row.status in RESULT_STATUSES):
            raise self._stale(job_id, row, now)
        return row._asdict()

    def fail(self, job_id: str, lease: str, error: str, retryable: bool, *, now=None) -> dict:
        """End this attempt: back to queued when retryable and attempts remain, else failed."""
        now = now or utcnow()
        with self._transaction() as connection:
            row = connection.execute(
                update(jobs)
                .where(self._holds(job_id, lease, now))
                .values(self._end_attempt(now, error, retryable=retryable))
                .returning(*jobs.c)
            ).one_or_none()
            if row is None:
                self._raise_stale(connection, job_id, now)
        self.previews.remove(job_id)
        log.info("job %s attempt failed (%s): now %s", job_id, error[:80], row.status)
        if row.status == JobStatus.FAILED.value:
            self.on_job_ended(row._asdict())
        return row._asdict()

    def expire(self, *, now=None) -> int:
        """Hand back every job whose lease ran out: queued again, or failed after max attempts."""
        now = now or utcnow()
        message = literal("lease expired: worker ") + func.coalesce(jobs.c.worker, "?") + literal(
            " stopped reporting"
        )
        with self._transaction() as connection:
            expired = connection.execute(
                update(jobs)
                .where(jobs.c.status == JobStatus.RUNNING.value, jobs.c.lease_expires_at < now)
                .values(self._end_attempt(now, message, retryable=True))
                .returning(*jobs.c)
            ).all()
        expired_ids = [row.id for row in expired]
        for job_id in expired_ids:
            self.previews.remove(job_id)
        for row in expired:
            if row.status == JobStatus.FAILED.value:
                self.on_job_ended(row._asdict())
        if expired_ids:
            log.info("%d expired lease(s) handed back", len(expired_ids))
        self._last_expire = now
        return len(expired_ids)

    def expire_if_due(self, *, now=None) -> None:
        """Run expire() at most once a second per process: cheap enough to call on every request."""
        now = now or utcnow()
        last = self._last_expire
        if last is None or (now - last).total_seconds() >= EXPIRE_EVERY_SECONDS or now < last:
            self.expire(now=now)

    # -- helpers --------------------------------------------------------------------------
    @property
    def _lease_length(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    def _holds(self, job_id: str, lease: str, now: datetime):
        """WHERE `lease` is the running job's lease and has not run out. Expiry is checked here,
        on every lease call, not only when expire() has run: a dead lease never comes back."""
        return and_(
            jobs.c.id == job_id,
            jobs.c.lease == lease,
            jobs.c.status == JobStatus.RUNNING.value,
            jobs.c.lease_expires_at >= now,
        )

    def _end_attempt(self, now, error, *, retryable: bool) -> dict:
        """Column values that end a running attempt (used by fail and expire, as one UPDATE)."""
        will_retry = and_(literal(retryable), jobs.c.attempts + 1 < self.settings.max_attempts)
        status = case(
            (jobs.c.cancel_requested, JobStatus.CANCELED.value),
            (will_retry, JobStatus.QUEUED.value),
            else_=JobStatus.FAILED.value,
        )
        ends = case((jobs.c.cancel_requested, True), (will_retry, False), else_=True)
        return {
            "status": status,
            "attempts": jobs.c.attempts + 1,
            "error": error,
            "progress": 0.0,
            "finished_at": case((ends, now), else_=None),
            "lease": None,
            "lease_expires_at": None,
            "preview_steps": None,
        }

    def _require(self, connection, job_id: str):
        row = connection.execute(select(*jobs.c).where(jobs.c.id == job_id)).one_or_none()
        if row is None:
            raise NotFound(f"no job {job_id}")
        return row

    def _raise_stale(self, connection, job_id: str, now: datetime):
        raise self._stale(job_id, self._require(connection, job_id), now)

    @staticmethod
    def _stale(job_id: str, current, now: datetime) -> StaleLease:
        if current.status == JobStatus.RUNNING.value and current.lease_expires_at < now:
            return StaleLease(f"job {job_id}'s lease expired at {iso(current.lease_expires_at)}")
        return StaleLease(
            f"that lease is not job {job_id}'s current lease (the job is {current.status})"
        )
