"""Login throttling with Flask-Limiter: wrong passwords are counted per client and for everyone.

Only failed logins count (`deduct_when`), in moving windows: once a window is full every login is
answered 429 with Retry-After, the right password too, so guessing gains nothing; as the oldest
failures age out of the window the owner can log in again, never locked out for good.

"Per client" behind `tailscale serve` or another proxy on this machine: every request then comes
from 127.0.0.1, so for a loopback peer we count by the last X-Forwarded-For entry, the address the
local proxy itself appended (entries before it are the client's own word). Anyone else is counted
by their address. The global limit caps guessing even from a client that spreads over addresses.
Counts live in this process's memory: a restart forgets them, which costs an attacker a restart.
"""

import ipaddress

from flask import Flask, request
from flask_limiter import Limiter

LOGIN_ENDPOINT = "pages.login"
LOGIN_FAILURES_PER_CLIENT = "10 per minute"
LOGIN_FAILURES_FOR_EVERYONE = "60 per minute"
THROTTLED_MESSAGE = "too many wrong passwords: wait a minute, then try again"
EVERYONE = "everyone"


def client_address() -> str:
    """The address to count a request against (see the module docstring for proxies)."""
    peer = request.remote_addr or ""
    forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
    try:
        is_local_proxy = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        is_local_proxy = False
    return forwarded if is_local_proxy and forwarded else peer


def is_failed_login(response) -> bool:
    return response.status_code == 401


def init_app(app: Flask) -> None:
    """Throttle POST /login; call after the pages blueprint is registered."""
    limiter = Limiter(
        client_address, app=app, storage_uri="memory://", headers_enabled=True,
        strategy="moving-window",
    )
    view = app.view_functions[LOGIN_ENDPOINT]
    for limit, key in ((LOGIN_FAILURES_PER_CLIENT, client_address),
                       (LOGIN_FAILURES_FOR_EVERYONE, lambda: EVERYONE)):
        view = limiter.limit(limit, key_func=key, methods=["POST"], deduct_when=is_failed_login,
                             error_message=THROTTLED_MESSAGE, scope=f"login-{limit}")(view)
    app.view_functions[LOGIN_ENDPOINT] = view
