"""What every answer carries and every request must name: security headers and the Host check.

The Host check stops DNS rebinding: a page on attacker.example whose name is re-pointed at this
server's address is same-origin with it in the browser, so the only thing that tells its requests
apart is the Host header (OWASP's DNS rebinding notes; Django's ALLOWED_HOSTS). We accept the
address the server is bound to, loopback, and the host of DALLEQ_PUBLIC_URL. A wildcard bind
(0.0.0.0, ::) is reached at any of the machine's own addresses, so it accepts those (read again
when an unknown address is asked for: a tailnet comes up after the server) and the machine's host
name. The worker API is not checked: it answers only a bearer token, which a rebound page never has.

The headers: a Content-Security-Policy that allows only this origin's own scripts and styles (no
inline code, so an injected tag runs nothing) and no framing, `nosniff`, a same-origin
Referrer-Policy, and HSTS when the public URL is https (shared/API.md is silent; issue 16, 8-9).
"""

import ipaddress
import socket
from urllib.parse import urlsplit

import psutil
from flask import Flask, request

from .errors import DalleqError
from .sessions import SESSIONLESS_PREFIX

WILDCARD_BINDS = ("", "0.0.0.0", "::")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS_SECONDS = 365 * 24 * 3600
EXTENSION = "dalleq_hosts"


def normalized(name: str) -> str:
    """A host name as we compare it: lower case, no trailing dot, IP addresses in one spelling."""
    name = name.strip().lower().rstrip(".").partition("%")[0]  # fe80::1%eth0: drop the zone
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name


def host_of(header: str) -> str:
    """The name in a Host header without its port: `[::1]:8000` -> `::1`, `box:8000` -> `box`."""
    header = header.strip()
    if header.startswith("["):
        return normalized(header[1:].partition("]")[0])
    if header.count(":") == 1:
        header = header.partition(":")[0]
    return normalized(header)


def is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    return is_ip_address(name) and ipaddress.ip_address(name).is_loopback


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def interface_addresses() -> set[str]:
    """Every address of this machine's network interfaces (a tailnet's 100.x.y.z among them)."""
    return {
        normalized(address.address)
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family in (socket.AF_INET, socket.AF_INET6)
    }


class AllowedHosts:
    """The host names this server answers to; create_app knows the public URL, serving the bind."""

    def __init__(self, public_url: str | None):
        self.names = {host_of(urlsplit(public_url).netloc)} if public_url else set()
        self.is_wildcard = False

    def bind(self, host: str) -> None:
        """Also accept the address the server listens on (and, if a wildcard, every address)."""
        bound = normalized(host.strip("[]")) if host.strip("[]") not in WILDCARD_BINDS else ""
        if not bound:
            self.is_wildcard = True
            self.names |= interface_addresses()
        else:
            self.names.add(bound)
        if not is_loopback(bound):
            hostname = socket.gethostname()
            self.names |= {normalized(hostname), normalized(socket.getfqdn(hostname))}

    def allows(self, name: str) -> bool:
        if name in self.names or is_loopback(name):
            return True
        if not self.is_wildcard or not is_ip_address(name):
            return False
        self.names |= interface_addresses()  # an interface may have come up since the start
        return name in self.names


def allow_bound_address(app: Flask, host: str) -> None:
    app.extensions[EXTENSION].bind(host)


def init_app(app: Flask) -> None:
    settings = app.config["DALLEQ"]
    allowed = AllowedHosts(settings.public_url)
    app.extensions[EXTENSION] = allowed
    is_https = bool(settings.public_url) and settings.public_url.lower().startswith("https:")
    app.config["SESSION_COOKIE_SECURE"] = is_https

    @app.before_request
    def check_host():
        """Refuse a Host (or a proxy's X-Forwarded-Host) that is not one of this server's names."""
        if request.path.startswith(SESSIONLESS_PREFIX):
            return
        given = [request.environ.get("HTTP_HOST", "")]
        given += request.headers.get("X-Forwarded-Host", "").split(",")
        for header in filter(str.strip, given):
            if not allowed.allows(host_of(header)):
                raise DalleqError(
                    f"this server does not answer to the host {header.strip()[:100]!r}; open it at "
                    "its own address, or set DALLEQ_PUBLIC_URL to the address you open",
                    code="bad_host",
                )

    @app.after_request
    def add_security_headers(response):
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if is_https:
            response.headers["Strict-Transport-Security"] = f"max-age={HSTS_SECONDS}"
        return response
