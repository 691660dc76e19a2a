"""Refusing a request from its headers, before waitress reads (and spools to disk) its body.

Waitress reads a whole request body, into a temporary file past a few hundred KB, before the app
sees the request, so a 401 or 413 from Flask comes only after the bytes were taken in: eight
unauthenticated 250 MB uploads once filled 2 GB of the temp folder (issue 16, item 10). So we look
at the request line and headers as soon as waitress has parsed them, and answer at once when:

- a worker call (the only one that takes big bodies) carries a body but not the worker token: 401;
- the Content-Length is over what that path takes (the upload cap for workers, 1 MB for the pages
  and the people's API, whose forms and JSON are small): 413.

The answer is shared/API.md's JSON error under /api/, a sentence elsewhere, and the connection is
closed, as waitress does for its own limits. The hook is waitress's parser and channel classes
(HTTPChannel.parser_class, the server's channel_class), which it defines for this kind of reuse.
"""

import json
from collections.abc import Mapping

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.utilities import Error, RequestEntityTooLarge

from .auth import same_secret
from .config import Settings
from .errors import DalleqError, Unauthorized
from .sessions import SESSIONLESS_PREFIX

PAGE_BODY_MAX_BYTES = 2**20
REASONS = {401: "Unauthorized", 413: "Request Entity Too Large"}


def refusal(path: str, headers: Mapping[str, str], content_length: int, is_chunked: bool,
            settings: Settings) -> DalleqError | None:
    """The error to answer before reading the body, or None to read it. `headers` as waitress
    keeps them: upper case, `_` for `-`."""
    if content_length <= 0 and not is_chunked:
        return None
    limit_bytes = PAGE_BODY_MAX_BYTES
    if path.startswith(SESSIONLESS_PREFIX):
        scheme, _, token = headers.get("AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not same_secret(token.strip(), settings.worker_token):
            return Unauthorized("missing or wrong worker token", code="bad_worker_token")
        limit_bytes = settings.max_upload_mb * 2**20
    if content_length > limit_bytes:
        return DalleqError(
            f"the request is larger than this server accepts ({limit_bytes // 2**20} MB)",
            code="too_large", status=413,
        )
    return None


class EarlyRefusal(Error):
    """A waitress error answered with our error body instead of waitress's plain text."""

    def __init__(self, error: DalleqError, path: str):
        super().__init__(error.message)
        self.code, self.reason = error.status, REASONS.get(error.status, "Bad Request")
        self.error, self.path = error, path

    def to_response(self, ident=None):
        if self.path.startswith("/api/"):
            body = json.dumps({"error": {"code": self.error.code, "message": self.error.message}})
            content_type = "application/json"
        else:
            body, content_type = f"{self.code} {self.reason}: {self.error.message}\n", "text/plain"
        headers = [("Content-Type", f"{content_type}; charset=utf-8"),
                   ("X-Content-Type-Options", "nosniff")]
        return f"{self.code} {self.reason}", headers, body.encode("utf-8")


def gated_channel(settings: Settings) -> type[HTTPChannel]:
    """A waitress channel whose parser asks `refusal` once the headers are in."""

    class GatedParser(HTTPRequestParser):
        is_gated = False

        def received(self, data):
            consumed = super().received(data)
            # Waitress may have refused already (a Content-Length over its cap): ours says why.
            is_open = not self.completed or isinstance(self.error, RequestEntityTooLarge)
            if self.headers_finished and is_open and not self.is_gated:
                self.is_gated = True
                error = refusal(self.path, self.headers, self.content_length, self.chunked,
                                settings)
                if error is not None:
                    self.error = EarlyRefusal(error, self.path)
                    self.completed = True
            return consumed

    class GatedChannel(HTTPChannel):
        parser_class = GatedParser

    return GatedChannel
