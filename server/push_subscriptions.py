"""The browsers to push to: checking a PushSubscription a page sends, and keeping it.

A subscription is the browser's push service URL (`endpoint`) and the keys the message is
encrypted for (RFC 8291: `p256dh`, the browser's P-256 public key, and `auth`, a 16-byte secret).
Everything is checked on the way in, so the sender never meets a subscription it cannot encrypt
for. The app has one owner, so every stored subscription hears of every job.
"""

import base64
import binascii
import dataclasses
import ipaddress
from datetime import datetime
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from . import defaults
from .errors import Conflict, InvalidInput
from .models import push_subscriptions_table

subscriptions = push_subscriptions_table

P256DH_BYTES = 65  # an uncompressed P-256 point: 0x04, then x and y of 32 bytes each
AUTH_BYTES = 16
LOOPBACK_NAMES = {"localhost"}


@dataclasses.dataclass(frozen=True)
class Subscription:
    endpoint: str
    p256dh: str
    auth: str

    def info(self) -> dict:
        """The subscription_info shape pywebpush takes (the browser's PushSubscription JSON)."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


def is_loopback(hostname: str) -> bool:
    if hostname.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def endpoint_from(body: dict) -> str:
    """The checked `endpoint`: an https URL (plain http only to this machine, for local tests)."""
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidInput("endpoint (the push service URL) is missing", code="invalid_endpoint")
    if len(endpoint) > defaults.PUSH_ENDPOINT_MAX_CHARS:
        raise InvalidInput(
            f"endpoint is longer than {defaults.PUSH_ENDPOINT_MAX_CHARS} characters",
            code="invalid_endpoint",
        )
    try:
        parts = urlsplit(endpoint)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        hostname = None
    is_https = parts.scheme == "https" if hostname else False
    is_local_http = bool(hostname) and parts.scheme == "http" and is_loopback(hostname)
    if not (is_https or is_local_http):
        raise InvalidInput(
            "endpoint must be an https:// URL (http:// only to localhost)", code="invalid_endpoint"
        )
    return endpoint


def key_bytes(keys: dict, name: str, length: int) -> bytes:
    """keys[name] decoded from base64url (padded or not); InvalidInput unless `length` bytes."""
    value = keys.get(name)
    problem = InvalidInput(
        f"keys.{name} must be base64url of {length} bytes", code=f"invalid_{name}"
    )
    if not isinstance(value, str) or not value.isascii():
        raise problem
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise problem from None
    if len(raw) != length or base64.urlsafe_b64encode(raw).decode().rstrip("=") != value.rstrip("="):
        raise problem  # the second test refuses characters the decoder skips
    return raw


def subscription_from(body: dict) -> Subscription:
    """The checked subscription of a page's PushSubscription JSON; InvalidInput names the field."""
    endpoint = endpoint_from(body)
    keys = body.get("keys")
    if not isinstance(keys, dict):
        raise InvalidInput("keys (p256dh and auth) is missing", code="invalid_keys")
    point = key_bytes(keys, "p256dh", P256DH_BYTES)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise InvalidInput(
            "keys.p256dh is not a point on the P-256 curve", code="invalid_p256dh"
        ) from None
    key_bytes(keys, "auth", AUTH_BYTES)
    return Subscription(endpoint, keys["p256dh"].rstrip("="), keys["auth"].rstrip("="))


class PushSubscriptions:
    """The stored subscriptions: add, remove, list."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def add(self, subscription: Subscription, *, now: datetime) -> bool:
        """Store it (its keys renewed when the endpoint is known); True when it is new.

        Conflict past defaults.PUSH_SUBSCRIPTIONS_MAX.
        """
        keys = {"p256dh": subscription.p256dh, "auth": subscription.auth}
        try:
            return self._add(subscription, keys, now)
        except IntegrityError:  # the same browser's two requests raced; the other stored it
            return False

    def _add(self, subscription: Subscription, keys: dict, now: datetime) -> bool:
        with self.engine.begin() as connection:
            renewed = connection.execute(
                update(subscriptions)
                .where(subscriptions.c.endpoint == subscription.endpoint)
                .values(keys)
            ).rowcount
            if renewed:
                return False
            count = connection.execute(select(func.count()).select_from(subscriptions)).scalar_one()
            if count >= defaults.PUSH_SUBSCRIPTIONS_MAX:
                raise Conflict(
                    f"{count} browsers already get notifications, the most this server keeps; "
                    "turn them off in a browser you no longer use",
                    code="too_many_subscriptions",
                )
            connection.execute(
                insert(subscriptions).values(
                    endpoint=subscription.endpoint, created_at=now, **keys
                )
            )
        return True

    def remove(self, endpoint: str) -> bool:
        """Forget the browser at this endpoint; True when it was stored."""
        with self.engine.begin() as connection:
            return bool(
                connection.execute(
                    delete(subscriptions).where(subscriptions.c.endpoint == endpoint)
                ).rowcount
            )

    def all(self) -> list[Subscription]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(subscriptions.c.endpoint, subscriptions.c.p256dh, subscriptions.c.auth)
                .order_by(subscriptions.c.id)
            ).all()
        return [Subscription(*row) for row in rows]
