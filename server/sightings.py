"""What the server sees of its workers: each claim records, per model asked for, when that worker
last asked. A job whose model no worker has asked for lately says so (issue 18: a `mega` job on a
server with only the demo worker waited "#1 in line" forever with no word).

One row per (worker, model), written by an upsert (INSERT ... ON CONFLICT DO UPDATE, which both
SQLite and PostgreSQL speak), so a claim costs one small write however often a worker polls. The
rows are general on purpose: a page can show each worker, its models and when it was last seen.
"""

import dataclasses
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from .clock import utcnow
from .defaults import WORKER_SEEN_MINUTES
from .models import worker_sightings_table

sightings = worker_sightings_table
_INSERT_FROM_DIALECT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def record_claim(connection: Connection, worker: str, models: list[str], now: datetime) -> None:
    """Upsert one row per model: `worker` asked for jobs of it at `now`."""
    if not models:
        return
    insert = _INSERT_FROM_DIALECT[connection.dialect.name](sightings)
    rows = [{"worker": worker, "model": model, "last_claim_at": now} for model in set(models)]
    connection.execute(
        insert.on_conflict_do_update(
            index_elements=["worker", "model"],
            set_={"last_claim_at": insert.excluded.last_claim_at},
        ),
        rows,
    )


@dataclasses.dataclass(frozen=True)
class ServedModels:
    """The models some worker asked for within the last `minutes`, and whether any worker ever
    asked for anything."""

    models: frozenset[str]
    any_worker_seen: bool
    minutes: int = WORKER_SEEN_MINUTES

    def warning(self, model: str) -> str | None:
        """What to tell a person whose job is for `model`; None when a worker asked lately."""
        if model in self.models:
            return None
        if not self.any_worker_seen:
            return f"No worker has asked this server for jobs yet, so model '{model}' has none."
        return f"No worker has asked for model '{model}' in the last {self.minutes} minutes."


def served_models(engine: Engine, *, now: datetime | None = None) -> ServedModels:
    """The models asked for within WORKER_SEEN_MINUTES of `now`."""
    since = (now or utcnow()) - timedelta(minutes=WORKER_SEEN_MINUTES)
    with engine.connect() as connection:
        recent = connection.execute(
            select(sightings.c.model).where(sightings.c.last_claim_at >= since).distinct()
        ).scalars()
        models = frozenset(recent)
        any_seen = bool(models) or connection.execute(
            select(func.count()).select_from(sightings)
        ).scalar_one() > 0
    return ServedModels(models, any_seen)
