"""Migrations keep a user's queue.db working: an old database upgrades with every job intact."""

import sqlite3
from datetime import datetime

from click.testing import CliRunner

from dalleq.cli import main
from server import create_app, db


def old_database(path):
    """A queue.db as release 0001 left it: jobs but no search index."""
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine, "0001")
    engine.dispose()
    connection = sqlite3.connect(path)
    for seq, prompt, status in [(1, "an old red fox", "done"), (2, "an old blue owl", "queued")]:
        connection.execute(
            "INSERT INTO jobs (seq, id, prompt, seed, grid, model, temperature, top_k, top_p,"
            " condition_scale, status, progress, attempts, created_at, cancel_requested)"
            " VALUES (?, ?, ?, 7, 3, 'mini', 1.0, 50, NULL, 10.0, ?, 0, 0, ?, 0)",
            (seq, f"old{seq}", prompt, status, datetime(2026, 1, seq)),
        )
    connection.commit()
    connection.close()


def test_an_old_database_upgrades_in_place_keeping_every_job(settings, tmp_path):
    path = tmp_path / "queue.db"
    old_database(path)
    assert db.current_revision(db.make_engine(f"sqlite:///{path}")) == "0001"
    app = create_app(settings.replace(database_url=f"sqlite:///{path}"))
    client = app.test_client()
    assert db.current_revision(app.extensions["dalleq"].engine) == db.head_revision()
    jobs = client.get("/api/v1/jobs").json["jobs"]
    assert [job["id"] for job in jobs] == ["old2", "old1"]
    assert [job["id"] for job in client.get("/api/v1/jobs?q=fox").json["jobs"]] == ["old1"]
    new = client.post("/api/v1/jobs", json={"prompt": "a new fox"}).json
    assert [job["id"] for job in client.get("/api/v1/jobs?q=fox").json["jobs"]] == [
        new["id"], "old1"]
    assert client.get("/api/v1/jobs/old2").json["position"] == 1


def test_dalleq_db_upgrade_reports_the_revision(tmp_path):
    path = tmp_path / "queue.db"
    old_database(path)
    result = CliRunner().invoke(main, ["db", "upgrade", "--db", str(path)])
    assert result.exit_code == 0, result.output
    assert f"is at revision {db.head_revision()}" in result.output


def test_downgrade_and_upgrade_again_round_trip(tmp_path):
    from alembic import command

    engine = db.make_engine(f"sqlite:///{tmp_path / 'queue.db'}")
    db.upgrade(engine)
    command.downgrade(db.alembic_config(engine), "0001")
    assert db.current_revision(engine) == "0001"
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
