"""Stars and families (issue 18): a `starred` flag on each job, and the indexes that find
starred jobs newest first and a job's reruns without reading the whole table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-20
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "jobs",
        sa.Column("starred", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_jobs_starred_seq", "jobs", ["starred", "seq"])
    op.create_index("ix_jobs_parent_id", "jobs", ["parent_id"])


def downgrade():
    op.drop_index("ix_jobs_parent_id", table_name="jobs")
    op.drop_index("ix_jobs_starred_seq", table_name="jobs")
    op.drop_column("jobs", "starred")  # SQLite 3.35+ drops a column in place
