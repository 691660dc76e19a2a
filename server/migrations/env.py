"""Alembic's entry point: migrate the engine server/db.py hands over (no alembic.ini needed)."""

from alembic import context
from sqlalchemy import create_engine

from server.models import Base

config = context.config
engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
