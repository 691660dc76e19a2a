"""The errors a request can cause, each with its HTTP status and machine code (shared/API.md).

Views raise these; one handler in server/error_pages.py turns them into JSON under /api/ and a
readable page elsewhere, so no user-caused error ever reaches the client as a 500.
"""


class DalleqError(Exception):
    """A user-caused error with an HTTP status, a machine code and a human sentence."""

    status = 400
    code = "bad_request"

    def __init__(self, message, *, code=None, status=None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status


class InvalidInput(DalleqError):
    status, code = 400, "invalid_input"

    @property
    def field(self) -> str | None:
        """The input at fault, read from the code's `invalid_<field>` (shared/API.md's codes), so
        a form can mark that input; None when the code names no field."""
        prefix = "invalid_"
        return self.code[len(prefix):] if self.code.startswith(prefix) else None


class Unauthorized(DalleqError):
    status, code = 401, "unauthorized"


class Forbidden(DalleqError):
    status, code = 403, "forbidden"


class NotFound(DalleqError):
    status, code = 404, "not_found"


class Conflict(DalleqError):
    status, code = 409, "conflict"


class StaleLease(Conflict):
    code = "stale_lease"


class KeyReused(DalleqError):
    """An Idempotency-Key sent again with another request than the one it first came with."""

    status, code = 422, "idempotency_key_reused"


class ConfigError(ValueError):
    """A setting (flag or DALLEQ_* variable) that cannot be used; raised before the server starts."""


class StartupError(Exception):
    """Something the user can fix stops `dalleq up` (a port in use); the message says what."""
