"""Reading jobs: one job, newest-first pages with cursor and search, queue positions.

Kept apart from server/queue.py because reads never change state and the pages and both APIs
share them.
"""

import base64
import binascii

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from .errors import InvalidInput, NotFound
from .models import JobStatus, images_table, jobs_table
from .search import matching_seqs, query_words

jobs = jobs_table
CURSOR_PREFIX = "s"


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The seq a cursor points below; InvalidInput for anything this server did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith(CURSOR_PREFIX):
            raise ValueError(raw)
        return int(raw[len(CURSOR_PREFIX) :])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this server handed out", code="invalid_cursor")


class Catalog:
    def __init__(self, engine: Engine):
        self.engine = engine

    def get(self, job_id: str) -> dict:
        """The job's row with its queue position; NotFound when there is no such job."""
        with self.engine.connect() as connection:
            row = connection.execute(select(*jobs.c).where(jobs.c.id == job_id)).one_or_none()
            if row is None:
                raise NotFound(f"no job {job_id}")
            job = row._asdict()
            self._add_positions(connection, [job])
        return job

    def with_position(self, job: dict) -> dict:
        """The row with its queue position added (for a job just submitted)."""
        with self.engine.connect() as connection:
            self._add_positions(connection, [job])
        return job

    def page(self, *, statuses=None, query: str = "", limit: int, cursor: str | None = None):
        """Newest-first jobs matching the filters. Returns (jobs, next_cursor or None)."""
        statement = select(*jobs.c).order_by(jobs.c.seq.desc()).limit(limit + 1)
        if statuses:
            statement = statement.where(jobs.c.status.in_(statuses))
        if cursor:
            statement = statement.where(jobs.c.seq < decode_cursor(cursor))
        words = query_words(query)
        with self.engine.connect() as connection:
            if words:
                matches = matching_seqs(connection.dialect.name, words).subquery()
                statement = statement.where(jobs.c.seq.in_(select(matches.c.seq)))
            rows = [row._asdict() for row in connection.execute(statement)]
            has_more = len(rows) > limit
            rows = rows[:limit]
            self._add_positions(connection, rows)
        return rows, (encode_cursor(rows[-1]["seq"]) if has_more else None)

    def images(self, job_seq: int) -> list[dict]:
        """The stored files of a finished job (grid, tiles, thumbnail), grid first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(*images_table.c)
                .where(images_table.c.job_seq == job_seq)
                .order_by(images_table.c.id)
            )
            return [row._asdict() for row in rows]

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status (for the queue header)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(jobs.c.status, func.count()).group_by(jobs.c.status)
            ).all()
        return {status.value: 0 for status in JobStatus} | dict(rows)

    def _add_positions(self, connection, rows: list[dict]) -> None:
        """Set `position` (1 = next to run) on queued jobs and None on the rest."""
        for job in rows:
            job["position"] = None
            if job["status"] == JobStatus.QUEUED.value:
                job["position"] = connection.execute(
                    select(func.count()).where(
                        jobs.c.status == JobStatus.QUEUED.value, jobs.c.seq <= job["seq"]
                    )
                ).scalar_one()
