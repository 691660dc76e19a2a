"""Live previews: the image-token steps of a running job's newest preview (shared/API-1.1.md).

The preview itself is a file in the data dir (server/previews.py); the row keeps its steps, so an
older preview arriving late never replaces a newer one, and the job object can say how far it got.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-12
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("jobs", sa.Column("preview_steps", sa.Integer, nullable=True))


def downgrade():
    op.drop_column("jobs", "preview_steps")  # SQLite 3.35+ drops a column in place
