"""Server-side records of logged-in browsers, so a session can end before its cookie does.

A signed cookie alone cannot be revoked: a copy of it works until it expires. So logging in
records a random id here and puts it in the cookie, every request checks the row is still there,
and logging out deletes it (issue 16, item 5). A new password ends every session another way:
the cookie also carries a version derived from the password (auth.password_version).
"""

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from .models import login_sessions_table as sessions


class LoginSessions:
    def __init__(self, engine: Engine):
        self.engine = engine

    def start(self, *, now: datetime, lifetime: timedelta) -> str:
        """Record a new session and return its id; sessions past their expiry are dropped too."""
        session_id = secrets.token_urlsafe(32)
        with self.engine.begin() as connection:
            connection.execute(delete(sessions).where(sessions.c.expires_at < now))
            connection.execute(insert(sessions).values(id=session_id, expires_at=now + lifetime))
        return session_id

    def is_live(self, session_id: str, *, now: datetime) -> bool:
        query = select(sessions.c.id).where(sessions.c.id == session_id,
                                            sessions.c.expires_at >= now)
        with self.engine.connect() as connection:
            return connection.execute(query).first() is not None

    def end(self, session_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(sessions).where(sessions.c.id == session_id))
