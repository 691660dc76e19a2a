"""The SQL of the two busiest verbs, submit and claim, built once (server/queue.py runs them).

They run on every request of the busiest endpoints, so each statement is built once here, with
parameters, and SQLAlchemy's compiled cache keeps its SQL: a call pays only for the cache lookup,
not for building and compiling a statement (bench/bench_server.py).
"""

import functools

from sqlalchemy import DateTime, Integer, String, bindparam, func, insert, select, update

from .models import JobStatus, jobs_table

jobs = jobs_table

# The columns submit writes, each a parameter of the INSERT below.
SUBMIT_COLUMNS = (
    "id", "prompt", "seed", "grid", "model", "temperature", "top_k", "top_p", "condition_scale",
    "status", "progress", "attempts", "parent_id", "created_at", "cancel_requested",
)  # fmt: skip

SUBMIT_STATEMENT = (
    insert(jobs)
    .values({name: bindparam(name, type_=jobs.c[name].type) for name in SUBMIT_COLUMNS})
    .returning(*jobs.c)
)
# A queued job's position counts the queued jobs of its own model up to it: workers claim by
# model, so jobs of other models are not ahead of it (shared/API.md `position`).
QUEUED_UP_TO = select(func.count().label("position")).where(
    jobs.c.status == JobStatus.QUEUED.value,
    jobs.c.model == bindparam("model", type_=String()),
    jobs.c.seq <= bindparam("seq", type_=Integer()),
)


def list_params(name: str, count: int, type_) -> list:
    """Parameters name_0 .. name_{count-1}: a list bound item by item, so that a statement built
    for one length keeps one SQL text (an expanding IN re-renders its SQL at every execution)."""
    return [bindparam(f"{name}_{index}", type_=type_) for index in range(count)]


def list_values(name: str, items: list) -> dict:
    return {f"{name}_{index}": item for index, item in enumerate(items)}


@functools.cache  # one per list length: at most defaults.CLAIM_MAX_JOBS of each
def oldest_queued(model_count: int):
    """The oldest queued jobs for models model_0.., at most max_jobs of them (FOR UPDATE SKIP
    LOCKED on PostgreSQL; SQLite has one writer at a time and ignores it)."""
    return (
        select(jobs.c.seq)
        .where(
            jobs.c.status == JobStatus.QUEUED.value,
            jobs.c.model.in_(list_params("model", model_count, String())),
        )
        .order_by(jobs.c.seq)
        .limit(bindparam("max_jobs", type_=Integer()))
        .with_for_update(skip_locked=True)
    )


def claim_statement(picked):
    """UPDATE ... RETURNING that leases the `picked` rows if they are still queued.

    Parameters: claim_lease_prefix (one secret per claim; the job id makes it unique per job),
    claim_expires_at, claim_worker, claim_now (the bind names avoid the SET columns' own names).
    """
    return (
        update(jobs)
        .where(picked, jobs.c.status == JobStatus.QUEUED.value)
        .values(
            status=JobStatus.RUNNING.value,
            lease=bindparam("claim_lease_prefix", type_=String()) + jobs.c.id,
            lease_expires_at=bindparam("claim_expires_at", type_=DateTime()),
            worker=bindparam("claim_worker", type_=String()),
            started_at=bindparam("claim_now", type_=DateTime()),
            progress=0.0,
        )
        .returning(*jobs.c)
    )


@functools.cache
def claim_oldest(model_count: int):
    """SQLite's claim: one statement, whose IN subquery SQLite evaluates once, under the write
    lock the UPDATE takes."""
    return claim_statement(jobs.c.seq.in_(oldest_queued(model_count).scalar_subquery()))


@functools.cache
def claim_seqs(seq_count: int):
    """PostgreSQL's claim of the rows oldest_queued locked: it may re-run a LIMIT subquery inside
    an UPDATE and then pick more rows than asked."""
    return claim_statement(jobs.c.seq.in_(list_params("seq", seq_count, Integer())))
