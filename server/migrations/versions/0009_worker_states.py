"""Worker states: what each worker last said it is doing (working, idle, paused and why), one
row per worker, so the queue page can say why nothing runs (issue 19, server/worker_states.py).

Revision ID: 0009
Revises: 0008
Create Date: 2027-01-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "worker_states",
        sa.Column("worker", sa.String(100), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("models", sa.Text, nullable=True),
        sa.Column("reported_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_worker_states_reported_at", "worker_states", ["reported_at"])


def downgrade():
    op.drop_table("worker_states")
