"""Idempotency keys: a submit sent twice under one key queues one job (shared/API-1.1.md).

After the IETF draft "The Idempotency-Key HTTP Header Field" (draft-ietf-httpapi-idempotency-key-
header) and Stripe's API: the client names a submission with a key; the server keeps the key for
IDEMPOTENCY_KEY_HOURS with a hash of the request it came with and the job it made. The same key
with the same request returns that job; with another request it is refused (422), since answering
with a job made from other values would be a lie. A lost answer on a flaky link is then safe to
retry, and so is a double tap on the phone page, whose forms carry a key made when they were
rendered (FORM_FIELD).

The request hash covers what the client sent (the JSON body or the form's fields), not the
validated columns: a submit without a seed gets a random one, and its retry must still match.
Storage and the race between two requests with one key are server/queue.py's (submit_once).
"""

import dataclasses
import hashlib
import json
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, insert, select

from . import defaults
from .errors import InvalidInput
from .models import idempotency_keys_table, jobs_table

HEADER = "Idempotency-Key"
FORM_FIELD = "idempotency_key"
KEY_LIFETIME = timedelta(hours=defaults.IDEMPOTENCY_KEY_HOURS)
FORM_KEY_BYTES = 18  # 24 URL-safe characters
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")

keys = idempotency_keys_table
jobs = jobs_table

# The job a live key made, with the hash of the request the key came with (bind: key, cutoff).
JOB_FOR_KEY = (
    select(*jobs.c, keys.c.request_hash)
    .join(keys, keys.c.job_seq == jobs.c.seq)
    .where(keys.c.key == bindparam("key"), keys.c.created_at >= bindparam("cutoff"))
)
# Expired keys are deleted by the next keyed submit (an index range scan, usually empty), which
# also frees an expired key for its new use (bind: cutoff).
DELETE_EXPIRED = delete(keys).where(keys.c.created_at < bindparam("cutoff"))
INSERT_KEY = insert(keys)


@dataclasses.dataclass(frozen=True)
class SubmissionKey:
    """A checked key and the hash of the request it came with."""

    key: str
    request_hash: str


def checked_key(raw: str | None) -> str | None:
    """The key as sent, or None when there is none; InvalidInput when it is not 1..200 printable
    ASCII characters (a key is compared byte for byte, so nothing is trimmed or folded)."""
    if raw is None:
        return None
    is_short = 1 <= len(raw) <= defaults.IDEMPOTENCY_KEY_MAX_CHARS
    if not is_short or not _PRINTABLE_ASCII.fullmatch(raw):
        raise InvalidInput(
            f"{HEADER} must be 1 to {defaults.IDEMPOTENCY_KEY_MAX_CHARS} printable ASCII "
            "characters",
            code="invalid_idempotency_key",
        )
    return raw


def request_hash(scope: str, body: dict) -> str:
    """sha256 of the request's scope (endpoint and parent) and its body, key order aside."""
    canonical = json.dumps([scope, body], sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def submission_key(raw_key: str | None, scope: str, body: dict) -> SubmissionKey | None:
    """The checked key with the request's hash; None when the request carries no key."""
    key = checked_key(raw_key)
    return None if key is None else SubmissionKey(key, request_hash(scope, body))


SUBMIT_SCOPE = "submit"


def rerun_scope(parent_id: str) -> str:
    return f"rerun {parent_id}"


def new_form_key() -> str:
    """A fresh key for one rendering of a form (templates call it as form_key())."""
    return secrets.token_urlsafe(FORM_KEY_BYTES)


def cutoff(now: datetime) -> datetime:
    """Keys created before this moment are expired: ignored, and deleted by the next submit."""
    return now - KEY_LIFETIME
