"""Checking a chained batch of stream events: its blob is the one the entry names (size
and SHA-256), and every line is a canonical event record, as many as the entry says.

Used by ``verify`` (evidence/verify.py) on the stored blobs and by ``verify-package``
(evidence/package_verify.py) on a package's ``events/<entry>.jsonl`` files.
"""

from __future__ import annotations

import json
from typing import Any

from core.errors import IntegrityError, InvalidInputError, NotFoundError
from core.events import StreamEvent
from core.timeutil import parse_iso
from storage.blobs.protocol import BlobStore, sha256_bytes
from storage.chain import EVENTS_KIND
from storage.signing import FORMAT, canonical_bytes


def events_body(key: str, record: dict[str, Any]) -> dict[str, Any]:
    """An ``events`` entry's body, its fields checked for type."""
    try:
        body = record[EVENTS_KIND]
        for name in ("key", "sha256", "from", "to", "window_end", "batch"):
            if not isinstance(body[name], str):
                raise TypeError
        for name in ("size", "count", "late"):
            if type(body[name]) is not int:
                raise TypeError
        parse_iso(body["from"])
        parse_iso(body["to"])
        parse_iso(body["window_end"])
    except (KeyError, TypeError, InvalidInputError):
        raise IntegrityError(key, "manifest entry is malformed (events)") from None
    return dict(body)


def check_batch_bytes(artifact: str, data: bytes, body: dict[str, Any]) -> list[StreamEvent]:
    """The events of a batch whose bytes are ``data``, checked against its entry's body;
    ``artifact`` (the blob key, or the package file) is named in the error."""
    if len(data) != body["size"] or sha256_bytes(data) != body["sha256"]:
        raise IntegrityError(artifact, "event batch does not match its SHA-256")
    events: list[StreamEvent] = []
    lines = data.split(b"\n")
    if lines[-1] != b"":
        raise IntegrityError(artifact, "event batch does not end with a newline")
    for number, line in enumerate(lines[:-1], start=1):
        try:
            record = json.loads(line)
            if canonical_bytes(record, FORMAT) != line:
                raise ValueError
            events.append(StreamEvent.from_json(record))
        except (ValueError, KeyError, TypeError, InvalidInputError):
            raise IntegrityError(artifact, f"line {number} is not a canonical event") from None
    if len(events) != body["count"] or sum(e.late for e in events) != body["late"]:
        raise IntegrityError(artifact, "event batch does not hold the events its entry counts")
    return events


def check_events_entry(blobs: BlobStore, key: str, record: dict[str, Any]) -> tuple[int, int]:
    """Re-read the batch an ``events`` entry names; returns (events, bytes read)."""
    body = events_body(key, record)
    try:
        data = blobs.get_bytes(body["key"])
    except NotFoundError:
        raise IntegrityError(body["key"], "event batch is missing") from None
    return len(check_batch_bytes(body["key"], data, body)), len(data)
