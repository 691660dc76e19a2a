"""The dalle-queue server: a Flask app over a SQL job queue (shared/API.md is its contract).

`create_app(settings)` builds everything (STYLE 19); `dalleq serve` runs it under waitress.
"""

import dataclasses
import secrets
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, current_app

from . import key_files
from .config import Settings, load_settings

if TYPE_CHECKING:  # create_app imports them: `import server` stays light (no SQLAlchemy, no PIL)
    from sqlalchemy.engine import Engine

    from .catalog import Catalog
    from .login_sessions import LoginSessions
    from .push_sender import PushSender
    from .push_subscriptions import PushSubscriptions
    from .queue import JobQueue
    from .storage import Storage

__all__ = ["Settings", "create_app", "load_settings", "services"]

SESSION_DAYS = 90
SECRET_KEY_FILE = ".secret_key"


def templates_dir() -> str:
    """templates/ beside the package in a checkout, or the copy a wheel installs under share/."""
    in_checkout = Path(__file__).resolve().parent.parent / "templates"
    if in_checkout.is_dir():
        return str(in_checkout)
    return str(Path(sys.prefix) / "share" / "dalle-queue" / "templates")


def secret_key(settings: Settings) -> str:
    """The session-signing key: the setting, or one made once and kept in the data dir."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir).expanduser() / SECRET_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    key_files.write_once(path, secrets.token_urlsafe(48).encode())
    return path.read_text().strip()


@dataclasses.dataclass
class Services:
    """What the views share: the engine, the queue's verbs, the reads and the file store."""

    engine: "Engine"
    queue: "JobQueue"
    catalog: "Catalog"
    storage: "Storage"
    login_sessions: "LoginSessions"
    push_subscriptions: "PushSubscriptions"
    push: "PushSender"  # started by serving.make_server, so a test's app sends nothing by itself
    push_public_key: str


def services() -> Services:
    """The current app's shared pieces (views call this rather than reaching into extensions)."""
    return current_app.extensions["dalleq"]


def create_app(settings: Settings | None = None) -> Flask:
    from . import (
        api_jobs,
        api_push,
        api_worker,
        api_workers,
        auth,
        compare,
        db,
        error_pages,
        files,
        openapi,
        pages,
        protection,
        throttle,
        vapid,
    )
    from .catalog import Catalog
    from .config import push_contact
    from .login_sessions import LoginSessions
    from .push_sender import PushSender
    from .push_subscriptions import PushSubscriptions
    from .queue import JobQueue
    from .sessions import CachedCookieSessionInterface
    from .storage import Storage

    settings = settings or load_settings()
    app = Flask(__name__, template_folder=templates_dir(), static_folder="static")
    app.config.update(
        DALLEQ=settings,
        SECRET_KEY=secret_key(settings),
        MAX_CONTENT_LENGTH=settings.max_upload_mb * 2**20,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(days=SESSION_DAYS),
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    app.session_interface = CachedCookieSessionInterface()
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    vapid_key = vapid.load_or_create(settings.data_dir)
    push_subscriptions = PushSubscriptions(engine)
    push = PushSender(
        push_subscriptions,
        vapid_key,
        push_contact(settings),
        base_url=(settings.public_url or "").rstrip("/"),
    )
    app.extensions["dalleq"] = Services(
        engine=engine,
        queue=JobQueue(engine, settings, on_job_ended=push.job_ended),
        catalog=Catalog(engine),
        storage=Storage(settings.data_dir),
        login_sessions=LoginSessions(engine),
        push_subscriptions=push_subscriptions,
        push=push,
        push_public_key=vapid.public_key_b64(vapid_key),
    )
    app.jinja_env.globals["csrf_token"] = auth.csrf_token
    error_pages.init_app(app)
    protection.init_app(app)
    for blueprint in (api_jobs.bp, api_push.bp, api_worker.bp, api_workers.bp, openapi.bp,
                      files.bp, pages.bp, compare.bp):
        app.register_blueprint(blueprint)
    throttle.init_app(app)
    return app
