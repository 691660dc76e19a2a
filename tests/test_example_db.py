"""queue.db.example must match what the migrations build today (a drift test, STYLE 34)."""

import sqlite3

from server import db
from server.example_db import EXAMPLE_PROMPTS, write_example
from tests.helpers import REPO

EXAMPLE = REPO / "queue.db.example"


def schema(path):
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        jobs = connection.execute(
            "SELECT prompt, seed, grid, status, attempts, error IS NOT NULL, parent_id IS NOT NULL"
            " FROM jobs ORDER BY seq"
        ).fetchall()
    finally:
        connection.close()
    return rows, revision, jobs


def test_the_committed_example_matches_the_current_migrations(tmp_path):
    fresh = tmp_path / "queue.db.example"
    write_example(fresh)
    committed_schema, committed_revision, committed_jobs = schema(EXAMPLE)
    fresh_schema, fresh_revision, fresh_jobs = schema(fresh)
    assert committed_revision == fresh_revision == [(db.head_revision(),)], (
        "queue.db.example is out of date: run `dalleq db example`"
    )
    assert committed_schema == fresh_schema, "queue.db.example is out of date: run `dalleq db example`"
    assert committed_jobs == fresh_jobs


def test_the_example_holds_a_job_of_every_kind():
    _, _, jobs = schema(EXAMPLE)
    statuses = [job[3] for job in jobs]
    assert len(jobs) == len(EXAMPLE_PROMPTS) + 1
    assert {"queued", "failed", "canceled"} <= set(statuses)
    assert any(job[6] for job in jobs), "a rerun (parent_id set) is part of the example"


def test_the_server_opens_a_copy_of_the_example(settings, tmp_path):
    from server import create_app

    copy = tmp_path / "copy.db"
    copy.write_bytes(EXAMPLE.read_bytes())
    client = create_app(settings.replace(database_url=f"sqlite:///{copy}")).test_client()
    jobs = client.get("/api/v1/jobs").json["jobs"]
    assert len(jobs) == len(EXAMPLE_PROMPTS) + 1
    assert client.get("/api/v1/jobs?q=watercolor").json["jobs"][0]["prompt"].startswith("a water")
