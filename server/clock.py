"""Time as the server stores it: naive UTC datetimes, written out as ISO 8601 with a Z."""

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds") + "Z"  # milliseconds truncated, not rounded
