"""Alembic migrations: each revision keeps a user's queue.db working across upgrades."""
