"""Stream events: chat, product cards, purchases and notices on the wall clock.

The connector contract (docs/events.md): one JSON object per event with an ``id`` unique
within the stream (a repeat is a duplicate, never a second event), a ``kind``, and ``at``,
the platform's time (ISO 8601 with an offset); per kind ``text`` and ``user`` (chat),
``action``, ``title``, ``price``, ``sku`` and ``link`` (product_card); every other field is
kept under ``raw`` as received. :func:`parse_event` checks one object and returns a
:class:`StreamEvent`, or raises :class:`EventRefused` with a one-word ``reason`` (for
counting) and a one-line message (for the connector).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.errors import InvalidInputError
from core.timeutil import iso, parse_iso

EVENT_KINDS = ("chat", "product_card", "purchase", "order", "notice")
#: Written by LiveWitness, never taken from a connector: a followed source was down
#: from ``at`` to ``until`` (``text`` says why), so missing events there are explained.
GAP_KIND = "gap"
STORED_KINDS = (*EVENT_KINDS, GAP_KIND)
CARD_ACTIONS = ("shown", "changed", "removed")
#: Fields each kind may carry besides id, kind and at (strings unless said otherwise).
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "chat": ("text", "user"),
    "product_card": ("action", "title", "price", "sku", "link"),
    "purchase": ("text", "user", "title", "price", "sku"),
    "order": ("text", "user", "title", "price", "sku"),
    "notice": ("text",),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "chat": ("text",),
    "product_card": ("action",),
    "notice": ("text",),
}
MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 4000

#: Why an event was refused (one word each; metrics count them by it).
REFUSAL_REASONS = (
    "malformed",  # not JSON, or not a JSON object
    "too_large",  # the event's bytes exceed the limit
    "invalid",  # a field is missing or of the wrong type
    "unknown_kind",
    "too_old",  # its time is further in the past than allowed
    "in_future",  # its time is further in the future than allowed
    "rate_limited",  # more events per second than the stream may take
    "conflict",  # its id is taken by another event of the stream
)


class EventRefused(InvalidInputError):
    """One event that cannot be taken; ``reason`` is one of :data:`REFUSAL_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class EventLimits:
    """What an event may be (from the settings)."""

    max_bytes: int
    max_past: timedelta
    max_future: timedelta


@dataclass(frozen=True)
class StreamEvent:
    """One event as stored. ``at`` is the platform's time (UTC); ``at_text`` is ``at`` as
    the connector wrote it (with its offset); ``late`` marks an event sealed after its
    window was (docs/events.md); ``batch`` is the chain entry of its batch, once sealed."""

    id: str
    kind: str
    at: datetime
    at_text: str
    received_at: datetime
    text: str | None = None
    user: str | None = None
    action: str | None = None
    title: str | None = None
    price: float | None = None
    sku: str | None = None
    link: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    until: datetime | None = None  # a gap's end
    late: bool = False
    batch: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The event as one line of a batch (and of events.jsonl): only fields it has."""
        record: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "at": self.at_text,
            "received_at": iso(self.received_at),
        }
        for name in ("text", "user", "action", "title", "price", "sku", "link"):
            value = getattr(self, name)
            if value is not None:
                record[name] = value
        if self.raw:
            record["raw"] = self.raw
        if self.until is not None:
            record["until"] = iso(self.until)
        if self.late:
            record["late"] = True
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any], batch: int | None = None) -> StreamEvent:
        """Read back a stored line (a batch's, or the catalog's copy)."""
        price = record.get("price")
        return cls(
            id=str(record["id"]),
            kind=str(record["kind"]),
            at=parse_iso(str(record["at"])),
            at_text=str(record["at"]),
            received_at=parse_iso(str(record["received_at"])),
            text=record.get("text"),
            user=record.get("user"),
            action=record.get("action"),
            title=record.get("title"),
            price=float(price) if price is not None else None,
            sku=record.get("sku"),
            link=record.get("link"),
            raw=dict(record.get("raw") or {}),
            until=parse_iso(str(record["until"])) if "until" in record else None,
            late=bool(record.get("late", False)),
            batch=batch,
        )


def decode_event(data: bytes, limits: EventLimits) -> Any:
    """One NDJSON line (or WebSocket message) as JSON, size checked first."""
    if len(data) > limits.max_bytes:
        raise EventRefused(
            "too_large", f"the event is {len(data)} bytes; at most {limits.max_bytes} are taken"
        )
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventRefused("malformed", f"not a JSON object: {exc}") from None


def parse_event(
    value: Any, limits: EventLimits, received_at: datetime, *, sized: bool = False
) -> StreamEvent:
    """Check one decoded event against the contract; ``sized``: its bytes were counted
    already (a line), else its compact JSON is (an element of a JSON array)."""
    if not isinstance(value, dict):
        raise EventRefused("malformed", "an event must be a JSON object")
    if not sized:
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > limits.max_bytes:
            raise EventRefused(
                "too_large", f"the event is {size} bytes; at most {limits.max_bytes} are taken"
            )
    event_id = value.get("id")
    if isinstance(event_id, int) and not isinstance(event_id, bool):
        event_id = str(event_id)
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > MAX_ID_CHARS:
        raise EventRefused("invalid", f"id must be a string of 1 to {MAX_ID_CHARS} characters")
    kind = value.get("kind")
    if kind not in EVENT_KINDS:
        raise EventRefused(
            "unknown_kind",
            f"event {event_id}: unknown kind {kind!r} (one of {', '.join(EVENT_KINDS)})",
        )
    at_text = value.get("at")
    if not isinstance(at_text, str):
        raise EventRefused("invalid", f"event {event_id}: at must be an ISO 8601 time with offset")
    try:
        at = parse_iso(at_text)
    except InvalidInputError as exc:
        raise EventRefused("invalid", f"event {event_id}: {exc}") from None
    if at < received_at - limits.max_past:
        raise EventRefused(
            "too_old",
            f"event {event_id}: at {at_text} is more than {_span(limits.max_past)} in the past",
        )
    if at > received_at + limits.max_future:
        raise EventRefused(
            "in_future",
            f"event {event_id}: at {at_text} is more than {_span(limits.max_future)} ahead",
        )
    fields = _kind_fields(value, str(kind), event_id)
    known = {"id", "kind", "at", *KIND_FIELDS[str(kind)]}
    raw = {k: v for k, v in value.items() if k not in known}
    return StreamEvent(
        id=event_id,
        kind=str(kind),
        at=at,
        at_text=at_text,
        received_at=received_at,
        raw=raw,
        **fields,
    )


def _kind_fields(value: dict[str, Any], kind: str, event_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in KIND_FIELDS[kind]:
        item = value.get(name)
        if item is None:
            if name in REQUIRED.get(kind, ()):
                raise EventRefused("invalid", f"event {event_id}: a {kind} needs {name}")
            continue
        if name == "price":
            found[name] = _price(item, event_id)
            continue
        if not isinstance(item, str) or len(item) > MAX_TEXT_CHARS:
            raise EventRefused(
                "invalid", f"event {event_id}: {name} must be text of at most {MAX_TEXT_CHARS}"
            )
        found[name] = item
    if kind == "product_card" and found["action"] not in CARD_ACTIONS:
        raise EventRefused(
            "invalid",
            f"event {event_id}: action must be one of {', '.join(CARD_ACTIONS)},"
            f" not {found['action']!r}",
        )
    return found


def _price(item: Any, event_id: str) -> float:
    """A number, or text that is one ("99.00"); a currency or other text goes under raw."""
    try:
        if isinstance(item, bool):
            raise ValueError
        price = float(item) if isinstance(item, int | float | str) else math.nan
    except ValueError:
        price = math.nan
    if not math.isfinite(price) or price < 0:
        raise EventRefused(
            "invalid", f"event {event_id}: price must be a number (put a currency in another field)"
        )
    return price


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    return f"{seconds / 86400:g} days" if seconds >= 86400 else f"{seconds:g}s"
