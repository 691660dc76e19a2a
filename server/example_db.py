"""`queue.db.example`: the current schema, built by the migrations, holding a few example jobs.

The file ships at the top of the repository so a person can open it with any SQLite tool and see
what the queue stores; tests/test_example_db.py rebuilds it and fails when the two drift apart.
"""

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from . import db
from .config import Settings
from .queue import JobQueue
from .validation import DEFAULT_PARAMS

EXAMPLE_START = datetime(2026, 11, 1, 9, 0, 0)
EXAMPLE_PROMPTS = [
    ("a watercolor fox in a snowy forest", 7, 3),
    ("an astronaut riding a horse, oil painting", 42, 2),
    ("sunset over the alps, 35mm photo", 1234, 3),
    ("a cozy reading nook with a cat", 99, 1),
]


def write_example(path: str | Path) -> None:
    """(Re)write the example database at `path` through the real migrations and queue verbs."""
    path = Path(path)
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    queue = JobQueue(engine, Settings(max_attempts=1))
    jobs = []
    for index, (prompt, seed, grid) in enumerate(EXAMPLE_PROMPTS):
        fields = dict(DEFAULT_PARAMS, prompt=prompt, seed=seed, grid=grid, model="mini")
        jobs.append(queue.submit(fields, now=EXAMPLE_START + timedelta(minutes=index)))
    rerun = dict(DEFAULT_PARAMS, prompt=jobs[0]["prompt"], seed=8, grid=3, model="mini")
    queue.submit(rerun, parent_id=jobs[0]["id"], now=EXAMPLE_START + timedelta(minutes=10))
    later = EXAMPLE_START + timedelta(minutes=20)
    queue.cancel(jobs[3]["id"], now=later)
    (claimed,) = queue.claim("example-worker", ["mini"], 1, now=later)
    queue.fail(claimed["id"], claimed["lease"], "CUDA out of memory", retryable=False, now=later)
    engine.dispose()
    # A plain rollback-journal file opens in any SQLite tool without -wal/-shm files appearing
    # beside it; the server switches its own copy back to WAL when it opens it.
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()
