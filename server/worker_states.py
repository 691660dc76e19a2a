"""What each worker is doing, as the queue page shows it (issue 19): working, idle, or paused and
why ("GPU busy (steam is running)"), so a person sees why nothing runs instead of guessing.

A worker reports its state on each change and at least every 60 s while idle or paused (POST
/api/v1/worker/status); one row per worker, written by an upsert like server/sightings.py. Two
more facts fill the picture: a running job leased to a worker means it is working whatever it
last said (a long job sends heartbeats, not states), and an older worker that never reports a
state is still seen by its claims ("asked for jobs 2 min ago").
"""

import dataclasses
import json
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from .clock import iso, utcnow
from .defaults import WORKER_GONE_SHOWN_HOURS, WORKER_SEEN_MINUTES
from .models import JobStatus, jobs_table, worker_sightings_table, worker_states_table

states = worker_states_table
_INSERT_FROM_DIALECT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
# What the page shows beside a worker's name: its reported state, or what its claims say of it.
ASKED = "asked"  # claims, but never reported a state (a worker from before issue 19)
GONE = "gone"  # not heard from within WORKER_SEEN_MINUTES


def record_state(
    connection: Connection,
    worker: str,
    state: str,
    reason: str | None,
    models: list[str] | None,
    now: datetime,
) -> dict:
    """Upsert `worker`'s row: what it said at `now`. Returns the row as stored."""
    row = {
        "worker": worker,
        "state": state,
        "reason": reason,
        "models": None if models is None else json.dumps(models),
        "reported_at": now,
    }
    insert = _INSERT_FROM_DIALECT[connection.dialect.name](states)
    connection.execute(
        insert.on_conflict_do_update(
            index_elements=["worker"],
            set_={name: insert.excluded[name] for name in row if name != "worker"},
        ),
        row,
    )
    return row


def report_json(row: dict) -> dict:
    """The answer to a status report: what was stored."""
    return {
        "worker": row["worker"],
        "state": row["state"],
        "reason": row["reason"],
        "models": None if row["models"] is None else json.loads(row["models"]),
        "reported_at": iso(row["reported_at"]),
    }


@dataclasses.dataclass(frozen=True)
class WorkerView:
    """One worker as the queue page shows it; `status` is working, idle, paused, asked or gone."""

    worker: str
    status: str
    reason: str | None
    models: list[str] | None
    reported_at: datetime | None
    last_claim_at: datetime | None
    running_jobs: int

    @property
    def last_seen_at(self) -> datetime | None:
        return max(filter(None, [self.reported_at, self.last_claim_at]), default=None)

    def json(self) -> dict:
        return {
            "worker": self.worker,
            "status": self.status,
            "reason": self.reason,
            "models": self.models,
            "reported_at": iso(self.reported_at),
            "last_claim_at": iso(self.last_claim_at),
            "last_seen_at": iso(self.last_seen_at),
            "running_jobs": self.running_jobs,
        }


def words(view: WorkerView, now: datetime) -> str:
    """What the page says beside the worker's name (static/worker_states.js says the same, with
    the time in the phone's own zone instead of UTC)."""
    if view.status == "paused":
        return f"paused: {view.reason}"
    if view.status in ("working", "idle"):
        return f"{view.status}: {view.reason}" if view.reason else view.status
    if view.status == ASKED:
        minutes = int((now - view.last_claim_at).total_seconds() // 60)
        return "asked for jobs just now" if minutes < 1 else f"asked for jobs {minutes} min ago"
    return f"not seen since {view.last_seen_at:%H:%M} UTC"


def effective_status(
    state_row: dict | None, last_claim_at: datetime | None, running_jobs: int, since: datetime
) -> str:
    """A running job wins (the worker is busy on it whatever it said last); then a state reported
    within the window; then a recent claim; else the worker is gone."""
    if running_jobs:
        return "working"
    if state_row and state_row["reported_at"] >= since:
        return state_row["state"]
    if last_claim_at and last_claim_at >= since:
        return ASKED
    return GONE


def worker_views(engine: Engine, *, now: datetime | None = None) -> list[WorkerView]:
    """Every worker heard from within WORKER_GONE_SHOWN_HOURS, or holding a running job, by name."""
    now = now or utcnow()
    since = now - timedelta(minutes=WORKER_SEEN_MINUTES)
    shown_since = now - timedelta(hours=WORKER_GONE_SHOWN_HOURS)
    sightings = worker_sightings_table
    jobs = jobs_table
    with engine.connect() as connection:
        claims = dict(
            connection.execute(
                select(sightings.c.worker, func.max(sightings.c.last_claim_at))
                .where(sightings.c.last_claim_at >= shown_since)
                .group_by(sightings.c.worker)
            ).all()
        )
        reported = {
            row["worker"]: row
            for row in connection.execute(
                select(states).where(states.c.reported_at >= shown_since)
            ).mappings()
        }
        running = dict(
            connection.execute(
                select(jobs.c.worker, func.count())
                .where(jobs.c.status == JobStatus.RUNNING.value, jobs.c.worker.is_not(None))
                .group_by(jobs.c.worker)
            ).all()
        )
    views = []
    for worker in sorted(claims.keys() | reported.keys() | running.keys()):
        row = reported.get(worker)
        status = effective_status(row, claims.get(worker), running.get(worker, 0), since)
        views.append(
            WorkerView(
                worker=worker,
                status=status,
                reason=row["reason"] if row and status == row["state"] else None,
                models=json.loads(row["models"]) if row and row["models"] else None,
                reported_at=row["reported_at"] if row else None,
                last_claim_at=claims.get(worker),
                running_jobs=running.get(worker, 0),
            )
        )
    return views
