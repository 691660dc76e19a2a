"""Who may do what: the optional app password, CSRF protection, and the worker token.

Nothing here looks at the client's address. Behind `tailscale serve` or any reverse proxy every
request arrives from 127.0.0.1, so "local means trusted" would open the queue to the whole tailnet.

CSRF, after datasette's csrf.py: HTML forms carry a per-session token; API writes are refused when
the browser says they come from another site (Origin / Sec-Fetch-Site), and a request that carries
our session cookie must also send that token in the X-CSRF-Token header. Scripts without a cookie
(curl on an open server) need neither.
"""

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from flask import current_app, g, request, session

from . import services
from .clock import utcnow
from .errors import Forbidden, Unauthorized

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
SESSION_ID = "login_id"  # a row of login_sessions (server/login_sessions.py)
SESSION_VERSION = "password_version"


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison that is False when either side is missing."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def csrf_token() -> str:
    """This session's CSRF token, created on first use (templates call it for every form)."""
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return session[CSRF_FIELD]


def password_version() -> str:
    """A fingerprint of the password, kept in the cookie: a new password ends every session."""
    password = current_app.config["DALLEQ"].password.encode("utf-8")
    key = current_app.secret_key.encode("utf-8")
    return hmac.new(key, b"session-version\0" + password, hashlib.sha256).hexdigest()[:32]


def is_logged_in() -> bool:
    """True on an open server, or for a session of the current password not logged out since."""
    if not current_app.config["DALLEQ"].password:
        return True
    if "dalleq_logged_in" not in g:  # asked several times a request; the database once
        session_id = session.get(SESSION_ID)
        g.dalleq_logged_in = bool(
            isinstance(session_id, str)
            and same_secret(session.get(SESSION_VERSION), password_version())
            and services().login_sessions.is_live(session_id, now=utcnow())
        )
    return g.dalleq_logged_in


def log_in(password: str) -> bool:
    if same_secret(password, current_app.config["DALLEQ"].password):
        session.clear()
        session[SESSION_ID] = services().login_sessions.start(
            now=utcnow(), lifetime=current_app.permanent_session_lifetime
        )
        session[SESSION_VERSION] = password_version()
        session.permanent = True
        g.pop("dalleq_logged_in", None)
        csrf_token()
        return True
    return False


def log_out() -> None:
    """End this session on the server too, so a copy of its cookie no longer works."""
    session_id = session.get(SESSION_ID)
    if isinstance(session_id, str):
        services().login_sessions.end(session_id)
    session.clear()
    g.pop("dalleq_logged_in", None)


def require_login() -> None:
    if not is_logged_in():
        raise Unauthorized("log in first: this server has a password")


def check_same_origin() -> None:
    """Refuse unsafe requests that a browser marks as coming from another site."""
    if request.method not in UNSAFE_METHODS:
        return
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise Forbidden("cross-site requests are refused", code="csrf")
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        origin_host = urlsplit(origin).netloc
        allowed = {request.host, request.headers.get("X-Forwarded-Host", "")}
        if origin_host not in allowed:
            raise Forbidden(f"requests from {origin} are refused", code="csrf")
    elif origin == "null":
        raise Forbidden("requests from an opaque origin are refused", code="csrf")


def check_form_csrf(form_token: str | None) -> None:
    if not same_secret(form_token, session.get(CSRF_FIELD)):
        raise Forbidden(
            "this form has expired or did not come from this site; reload the page and try again",
            code="csrf",
        )


def has_session_cookie() -> bool:
    """Whether the request carries our session cookie; scripts send no Cookie header at all, and
    for them the header is not parsed."""
    cookie_name = current_app.config.get("SESSION_COOKIE_NAME", "session")
    return bool(request.environ.get("HTTP_COOKIE") and request.cookies.get(cookie_name))


def check_api_csrf() -> None:
    """API writes from a browser session must echo the session's CSRF token."""
    check_same_origin()
    # `session` is read only when the cookie is there: reading it adds "Vary: Cookie".
    if (
        request.method in UNSAFE_METHODS
        and has_session_cookie()
        and session
        and not same_secret(request.headers.get(CSRF_HEADER), session.get(CSRF_FIELD))
    ):
        raise Forbidden(f"missing or wrong {CSRF_HEADER} header", code="csrf")


def require_worker_token() -> None:
    """Bearer-token check for the worker API; every call is refused while no token is set."""
    expected = current_app.config["DALLEQ"].worker_token
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if not expected:
        raise Unauthorized(
            "worker endpoints are disabled: the server has no DALLEQ_WORKER_TOKEN",
            code="no_worker_token",
        )
    if scheme.lower() != "bearer" or not same_secret(given.strip(), expected):
        raise Unauthorized("missing or wrong worker token", code="bad_worker_token")
