"""Worker sightings: when each worker last asked for jobs of each model (server/sightings.py), so
a job whose model no worker serves says so instead of waiting "#1 in line" in silence; and an
index for a queued job's place among the queued jobs of its own model.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-20
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "worker_sightings",
        sa.Column("worker", sa.String(100), primary_key=True),
        sa.Column("model", sa.String(64), primary_key=True),
        sa.Column("last_claim_at", sa.DateTime, nullable=False),
    )
    op.create_index(
        "ix_worker_sightings_last_claim_at", "worker_sightings", ["last_claim_at"]
    )
    op.create_index("ix_jobs_status_model_seq", "jobs", ["status", "model", "seq"])


def downgrade():
    op.drop_index("ix_jobs_status_model_seq", "jobs")
    op.drop_table("worker_sightings")
