"""Server settings, layered: defaults, then DALLEQ_* environment, then flags, then test overrides.

Each setting is parsed and range-checked once here (STYLE 19): Flask's own `from_prefixed_env`
would keep a value it cannot parse as a plain string, and a typo in a lease length should stop the
server at start-up with a clear message rather than surface later as a strange 500.
"""

import dataclasses
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from . import defaults
from .errors import ConfigError

ENV_PREFIX = "DALLEQ_"


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str = defaults.DATABASE_URL
    data_dir: str = defaults.DATA_DIR
    worker_token: str | None = None
    password: str | None = None
    lease_seconds: int = defaults.LEASE_SECONDS
    max_attempts: int = defaults.MAX_ATTEMPTS
    max_upload_mb: int = defaults.MAX_UPLOAD_MB
    secret_key: str | None = None  # signs session cookies; kept in the data dir when unset
    default_model: str = defaults.DEFAULT_MODEL
    public_url: str | None = None  # https://box.tailnet.ts.net: cookies Secure, HSTS, an allowed Host
    push_contact: str | None = None  # VAPID "sub" of Web Push: a mailto: or https: URL

    def replace(self, **changes) -> "Settings":
        """A copy with some settings changed, checked again."""
        return validated(dataclasses.replace(self, **changes))


# integer settings -> lowest allowed value
_INT_SETTINGS = {"lease_seconds": 5, "max_attempts": 1, "max_upload_mb": 1}


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _convert(name: str, raw):
    if name in _INT_SETTINGS:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ConfigError(f"{env_name(name)} must be a whole number, got {raw!r}") from None
        return value
    value = str(raw)
    optional = ("worker_token", "password", "secret_key", "public_url", "push_contact")
    return value if value != "" or name not in optional else None


def validated(settings: Settings) -> Settings:
    """Range-check every setting; raises ConfigError with the variable's name."""
    for name, lowest in _INT_SETTINGS.items():
        value = getattr(settings, name)
        if not isinstance(value, int) or value < lowest:
            raise ConfigError(f"{env_name(name)} must be a whole number >= {lowest}, got {value!r}")
    if not settings.database_url.strip():
        raise ConfigError(f"{env_name('database_url')} must not be empty")
    if not settings.data_dir.strip():
        raise ConfigError(f"{env_name('data_dir')} must not be empty")
    if settings.public_url is not None:
        check_public_url(settings.public_url)
    if settings.push_contact is not None:
        check_push_contact(settings.push_contact)
    return settings


def check_public_url(url: str) -> None:
    """An http(s) URL with a host name: the address people open, e.g. behind `tailscale serve`."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # an unclosed IPv6 bracket, a port that is not a number
        hostname = None
    if not hostname or parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"{env_name('public_url')} must be an http:// or https:// URL with a host, got {url!r}"
        )


def check_push_contact(contact: str) -> None:
    """A mailto: address or an https URL: push services (Apple's) refuse any other VAPID subject."""
    try:
        parts = urlsplit(contact)
        is_mailto = parts.scheme == "mailto" and "@" in parts.path
        is_https = parts.scheme == "https" and bool(parts.hostname)
    except ValueError:  # an unclosed IPv6 bracket
        is_mailto = is_https = False
    if not (is_mailto or is_https):
        raise ConfigError(
            f"{env_name('push_contact')} must be a mailto: address or an https:// URL, "
            f"got {contact!r}"
        )


def push_contact(settings: Settings) -> str:
    """The VAPID subject: DALLEQ_PUSH_CONTACT, else an https public URL, else defaults'."""
    if settings.push_contact:
        return settings.push_contact
    if settings.public_url and urlsplit(settings.public_url).scheme == "https":
        return settings.public_url
    return defaults.PUSH_CONTACT


def load_settings(environ: Mapping[str, str] | None = None, **overrides) -> Settings:
    """Build Settings from defaults, then DALLEQ_* variables, then explicit overrides (flags, tests).

    An override of None means "not given" so click options can be passed straight through.
    """
    environ = os.environ if environ is None else environ
    values = {}
    for field in dataclasses.fields(Settings):
        if env_name(field.name) in environ:
            values[field.name] = _convert(field.name, environ[env_name(field.name)])
    for name, value in overrides.items():
        if name not in {f.name for f in dataclasses.fields(Settings)}:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = _convert(name, value)
    return validated(Settings(**values))
