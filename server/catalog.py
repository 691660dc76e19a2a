"""Reading jobs: one job, newest-first pages with cursor, search and the starred filter, a job's
family (its parent and reruns), queue positions.

Kept apart from server/queue.py because reads never change state and the pages and both APIs
share them.
"""

import base64
import binascii
import functools

from sqlalchemy import Boolean, bindparam, func, or_, select, union_all
from sqlalchemy.engine import Engine

from .errors import InvalidInput, NotFound
from .models import JobStatus, images_table, jobs_table
from .search import (
    LIKE_PATTERN,
    SEARCH_QUERY,
    like_pattern,
    query_words,
    search_query,
    select_containing_jobs,
    select_matching_jobs,
)

jobs = jobs_table
CURSOR_PREFIX = "s"
SEQ_MAX = 2**31 - 1  # jobs.seq is an Integer column: 32 bits on PostgreSQL, so no seq is larger
ROW_COUNT, BELOW_SEQ, STARRED = "row_count", "below_seq", "starred"  # page_statement()'s
FAMILY_MAX = 24  # members of a family shown on a job page: the strip stays one short scroll

# Statements run on every job view and submit are built once and run with parameters: building a
# Core statement and its cache key costs more than SQLite answering it (bench/bench_server.py).
JOB_BY_ID = select(*jobs.c).where(jobs.c.id == bindparam("job_id"))
# A queued job's position is the number of queued jobs of its model with seq <= its own (workers
# claim by model): for the queued rows of a page, the count of its model's queued jobs below the
# page's lowest queued seq plus its rank among its model's jobs within the page's span. One
# statement per page, each count a range of ix_jobs_status_model_seq, instead of one per row.
_is_queued = jobs.c.status == JobStatus.QUEUED.value
_below = jobs.alias("below")
_queued_below = select(func.count()).where(
    _below.c.status == JobStatus.QUEUED.value,
    _below.c.model == jobs.c.model,
    _below.c.seq < bindparam("low_seq"),
)
_rank_in_model = func.row_number().over(partition_by=jobs.c.model, order_by=jobs.c.seq)
QUEUED_POSITIONS = select(
    jobs.c.seq, (_queued_below.scalar_subquery() + _rank_in_model).label("position")
).where(_is_queued, jobs.c.seq.between(bindparam("low_seq"), bindparam("high_seq")))


def _newest_first(statement, seq, has_cursor: bool, has_starred: bool = False):
    """`statement` ordered by `seq` newest first, below the cursor, starred or not as STARRED
    says (when has_starred), at most ROW_COUNT rows."""
    if has_starred:
        statement = statement.where(jobs.c.starred == bindparam(STARRED, type_=Boolean()))
    if has_cursor:
        statement = statement.where(seq < bindparam(BELOW_SEQ))
    return statement.order_by(seq.desc()).limit(bindparam(ROW_COUNT))


WORDS, LITERAL = "words", "literal"  # the kinds of search: by words, or as typed (search.py)


@functools.lru_cache(maxsize=256)
def page_statement(
    dialect_name: str,
    statuses: tuple[str, ...],
    search: str,
    has_cursor: bool,
    has_starred: bool = False,
):
    """The SELECT behind Catalog.page for one shape of request; parameters ROW_COUNT, BELOW_SEQ
    (with a cursor), STARRED (with the starred filter), search.SEARCH_QUERY (a WORDS search) or
    search.LIKE_PATTERN (LITERAL).

    Built once per shape and kept: building a statement this size (and its cache key) costs ~2 ms,
    twenty times what SQLite takes to answer it. There are few shapes: statuses are validated.

    With statuses and no search, each status is read alone and the results merged: `status IN
    (...) ORDER BY seq DESC` has no index giving that order, so SQLite walks the whole table newest
    first and, when few jobs have those statuses (the live queue beside 100,000 finished jobs),
    reads every row to find them; each status alone is a range of ix_jobs_status_seq in seq order.
    The starred filter alone is a range of ix_jobs_starred_seq in seq order, in the same way.
    """
    if search:
        if search == LITERAL:
            statement, seq = select_containing_jobs(), jobs.c.seq
        else:
            statement, seq = select_matching_jobs(dialect_name)
        if statuses:
            statement = statement.where(jobs.c.status.in_(statuses))
        return _newest_first(statement, seq, has_cursor, has_starred)
    arms = [
        _newest_first(
            select(*jobs.c).where(jobs.c.status == status), jobs.c.seq, has_cursor, has_starred
        )
        for status in statuses
    ] or [_newest_first(select(*jobs.c), jobs.c.seq, has_cursor, has_starred)]
    if len(arms) == 1:
        return arms[0]
    # Each arm is wrapped in a subquery: SQLite takes ORDER BY/LIMIT only at the end of a UNION.
    merged = union_all(*(select(arm.subquery()) for arm in arms)).subquery()
    return select(merged).order_by(merged.c.seq.desc()).limit(bindparam(ROW_COUNT))


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The seq a cursor points below; InvalidInput for anything this server did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        digits = raw.removeprefix(CURSOR_PREFIX)
        # A seq the database can compare: a larger one overflows SQLite's and PostgreSQL's integers
        if digits == raw or not (digits.isascii() and digits.isdigit()) or int(digits) > SEQ_MAX:
            raise ValueError(raw)
        return int(digits)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this server handed out", code="invalid_cursor")


class Catalog:
    def __init__(self, engine: Engine):
        self.engine = engine

    def get(self, job_id: str) -> dict:
        """The job's row with its queue position; NotFound when there is no such job."""
        with self.engine.connect() as connection:
            row = connection.execute(JOB_BY_ID, {"job_id": job_id}).one_or_none()
            if row is None:
                raise NotFound(f"no job {job_id}")
            job = row._asdict()
            self._add_positions(connection, [job])
        return job

    def page(
        self,
        *,
        statuses=None,
        query: str = "",
        limit: int,
        cursor: str | None = None,
        starred: bool | None = None,
    ):
        """Newest-first jobs matching the filters (`starred` None: starred or not). Returns (jobs,
        next_cursor or None)."""
        params = {ROW_COUNT: limit + 1}
        if cursor:
            params[BELOW_SEQ] = decode_cursor(cursor)
        if starred is not None:
            params[STARRED] = starred
        query = (query or "").strip()
        words = query_words(query)
        search = WORDS if words else LITERAL if query else ""
        with self.engine.connect() as connection:
            dialect_name = connection.dialect.name
            if search == WORDS:
                params[SEARCH_QUERY] = search_query(dialect_name, words)
            elif search == LITERAL:
                params[LIKE_PATTERN] = like_pattern(query)
            shape = (
                tuple(sorted(set(statuses or ()))), search, bool(cursor), starred is not None
            )
            statement = page_statement(dialect_name, *shape)
            rows = [row._asdict() for row in connection.execute(statement, params)]
            has_more = len(rows) > limit
            rows = rows[:limit]
            self._add_positions(connection, rows)
        return rows, (encode_cursor(rows[-1]["seq"]) if has_more else None)

    def family(self, job: dict) -> list[dict]:
        """The job's family, oldest first: its parent, the parent's other reruns (its siblings),
        the job itself and its own reruns; at most FAMILY_MAX, the job always among them."""
        kin = [jobs.c.id == job["id"], jobs.c.parent_id == job["id"]]
        if job["parent_id"]:
            kin += [jobs.c.id == job["parent_id"], jobs.c.parent_id == job["parent_id"]]
        statement = select(*jobs.c).where(or_(*kin)).order_by(jobs.c.seq).limit(FAMILY_MAX)
        with self.engine.connect() as connection:
            members = [row._asdict() for row in connection.execute(statement)]
            if not any(member["id"] == job["id"] for member in members):
                members[-1] = dict(job)  # a large family cut short still shows the job itself
            self._add_positions(connection, members)
        return members

    def get_many(self, job_ids: list[str]) -> list[dict]:
        """The jobs of these ids in the order given; NotFound naming the first unknown one."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(*jobs.c).where(jobs.c.id.in_(job_ids)))
            job_from_id = {row.id: row._asdict() for row in rows}
            unknown = [job_id for job_id in job_ids if job_id not in job_from_id]
            if unknown:
                raise NotFound(f"no job {unknown[0]}")
            found = [job_from_id[job_id] for job_id in job_ids]
            self._add_positions(connection, found)
        return found

    def images(self, job_seq: int) -> list[dict]:
        """The stored files of a finished job (grid, tiles, thumbnail), grid first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(*images_table.c)
                .where(images_table.c.job_seq == job_seq)
                .order_by(images_table.c.id)
            )
            return [row._asdict() for row in rows]

    def _add_positions(self, connection, rows: list[dict]) -> None:
        """Set `position` (1 = next to run) on queued jobs and None on the rest.

        A row read as queued that has left the queue since (claimed or canceled in between)
        gets None too: it has no place in the queue any more.
        """
        queued_seqs = [job["seq"] for job in rows if job["status"] == JobStatus.QUEUED.value]
        position_from_seq = {}
        if queued_seqs:
            span = {"low_seq": min(queued_seqs), "high_seq": max(queued_seqs)}
            position_from_seq = dict(connection.execute(QUEUED_POSITIONS, span).all())
        for job in rows:
            job["position"] = position_from_seq.get(job["seq"])
