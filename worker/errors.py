"""The worker's exceptions: how each server answer and each stop request is told apart."""


class WorkerError(Exception):
    """Base of the worker's own errors."""


class ServerUnavailable(WorkerError):
    """No usable answer (connection refused, timeout, 5xx): try again later."""


class Unauthorized(WorkerError):
    """401: the token is wrong. Retrying would not help, so the worker stops."""


class LeaseLost(WorkerError):
    """409: this lease is no longer the job's (expired, canceled, or another worker has it)."""


class JobGone(WorkerError):
    """404: the job was deleted."""


class Rejected(WorkerError):
    """Any other 4xx: the server refused what we sent; the message says why."""


class BatchStopped(WorkerError):
    """Raised from the progress callback: every job of the batch was canceled or lost."""


class Abandoned(WorkerError):
    """Raised from the progress callback after a second stop signal: hand the leases back."""
