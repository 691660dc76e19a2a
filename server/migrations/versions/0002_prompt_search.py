"""Prompt search without a table scan: SQLite FTS5 kept in step by triggers, a GIN index on PostgreSQL.

Both index words so that server/search.py can ask for every word of the query as a prefix.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SQLITE_UP = [
    "CREATE VIRTUAL TABLE jobs_fts USING fts5("
    "prompt, content='jobs', content_rowid='seq', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER jobs_fts_after_insert AFTER INSERT ON jobs BEGIN "
    "INSERT INTO jobs_fts(rowid, prompt) VALUES (new.seq, new.prompt); END",
    "CREATE TRIGGER jobs_fts_after_delete AFTER DELETE ON jobs BEGIN "
    "INSERT INTO jobs_fts(jobs_fts, rowid, prompt) VALUES ('delete', old.seq, old.prompt); END",
    "CREATE TRIGGER jobs_fts_after_update AFTER UPDATE OF prompt ON jobs BEGIN "
    "INSERT INTO jobs_fts(jobs_fts, rowid, prompt) VALUES ('delete', old.seq, old.prompt); "
    "INSERT INTO jobs_fts(rowid, prompt) VALUES (new.seq, new.prompt); END",
    # Index the prompts of jobs that existed before this migration.
    "INSERT INTO jobs_fts(jobs_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER jobs_fts_after_update",
    "DROP TRIGGER jobs_fts_after_delete",
    "DROP TRIGGER jobs_fts_after_insert",
    "DROP TABLE jobs_fts",
]
POSTGRES_UP = ["CREATE INDEX ix_jobs_prompt_words ON jobs USING gin (to_tsvector('simple', prompt))"]
POSTGRES_DOWN = ["DROP INDEX ix_jobs_prompt_words"]


def _run(statements):
    for statement in statements:
        op.execute(statement)


def upgrade():
    _run(SQLITE_UP if op.get_bind().dialect.name == "sqlite" else POSTGRES_UP)


def downgrade():
    _run(SQLITE_DOWN if op.get_bind().dialect.name == "sqlite" else POSTGRES_DOWN)
