"""UTC time helpers: every stored time is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from core.errors import InvalidInputError


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, the one form LiveWitness writes."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        raise InvalidInputError(f"time {text!r} has no time zone; add Z or +08:00")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
        raise InvalidInputError(f"time {text!r} is outside the years 1 to 9999 in UTC") from None
