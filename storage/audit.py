"""The audit log: every search, moment view, export and admin change, hash-chained.

Each event's SHA-256 covers its sequence number, time, actor, action, details and the
previous event's SHA-256 (canonical JSON, as the manifests), so deleting, reordering or
editing an event breaks every later link; :func:`verify_audit` names the first break.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from core.timeutil import iso, utc_now
from storage.catalog import Catalog
from storage.models import AuditEvent
from storage.signing import canonical_json

GENESIS = "0" * 64


def event_digest(
    seq: int, at: str, actor: str, role: str, action: str, details: str, prev: str
) -> str:
    body = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "role": role,
        "action": action,
        "details": json.loads(details),
        "prev_sha256": prev,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def record(catalog: Catalog, actor: str, role: str, action: str, details: dict[str, Any]) -> int:
    """Append one event; returns its sequence number."""
    text = canonical_json(details).decode()

    def link(previous: AuditEvent | None) -> AuditEvent:
        seq = previous.seq + 1 if previous else 1
        prev = previous.sha256 if previous else GENESIS
        at = utc_now()
        digest = event_digest(seq, iso(at), actor, role, action, text, prev)
        return AuditEvent(
            seq=seq,
            at=at,
            actor=actor,
            role=role,
            action=action,
            details=text,
            prev_sha256=prev,
            sha256=digest,
        )

    return catalog.append_audit(link).seq


def event_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": iso(event.at),
        "actor": event.actor,
        "role": event.role,
        "action": event.action,
        "details": json.loads(event.details),
        "prev_sha256": event.prev_sha256,
        "sha256": event.sha256,
    }


@dataclass(frozen=True)
class AuditCheck:
    events: int
    ok: bool
    first_bad_seq: int | None = None
    problem: str | None = None


def verify_audit(catalog: Catalog) -> AuditCheck:
    prev, expected_seq, count = GENESIS, 1, 0
    for event in catalog.audit_events():
        count += 1
        if event.seq != expected_seq:
            return AuditCheck(count, False, event.seq, f"expected event {expected_seq} here")
        if event.prev_sha256 != prev:
            return AuditCheck(count, False, event.seq, "does not link to the event before")
        digest = event_digest(
            event.seq,
            iso(event.at),
            event.actor,
            event.role,
            event.action,
            event.details,
            event.prev_sha256,
        )
        if digest != event.sha256:
            return AuditCheck(count, False, event.seq, "its content does not match its hash")
        prev, expected_seq = event.sha256, expected_seq + 1
    return AuditCheck(count, True)
