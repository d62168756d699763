"""Signed overlays: notes, tags and transcript corrections a person adds to a case's
moment. They are never evidence and never change it: each is a record signed with the
installation's Ed25519 key over its RFC 8785 bytes (author and time inside what is
signed), stored write-once under ``overlays/`` (outside ``streams/``, the evidence), and
indexed in the catalog (``CaseOverlay``). Every read checks the record again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.errors import InvalidInputError, NotFoundError
from core.timeutil import iso, utc_now
from storage.blobs.protocol import BlobStore, sha256_bytes
from storage.models import CaseMoment, CaseOverlay
from storage.signing import FORMAT, Signer, canonical_bytes, check_signature

OVERLAY_TYPE = "livewitness-overlay"
OVERLAYS_PREFIX = "overlays/"
OVERLAY_KINDS = ("note", "tag", "correction")
MAX_OVERLAY_CHARS = 4000
MAX_TAG_CHARS = 64


@dataclass(frozen=True)
class CheckedOverlay:
    """An overlay as read back: its row, its signed record, and whether it verifies."""

    row: CaseOverlay
    record: dict[str, Any] | None
    signature_ok: bool


def overlay_key(case_id: int, sha256: str) -> str:
    return f"{OVERLAYS_PREFIX}cases/{case_id:08d}/{sha256}.json"


def check_overlay_text(kind: str, text: str) -> str:
    if kind not in OVERLAY_KINDS:
        raise InvalidInputError(f"an overlay is one of {', '.join(OVERLAY_KINDS)}, not {kind!r}")
    cleaned = text.strip()
    if not cleaned:
        raise InvalidInputError(f"a {kind} needs some text")
    longest = MAX_TAG_CHARS if kind == "tag" else MAX_OVERLAY_CHARS
    if len(cleaned) > longest or (kind == "tag" and any(c.isspace() for c in cleaned)):
        raise InvalidInputError(
            f"a {kind} is at most {longest} characters"
            + (" without spaces" if kind == "tag" else "")
        )
    return cleaned


def sign_overlay(
    blobs: BlobStore,
    signer: Signer,
    moment: CaseMoment,
    stream: str,
    kind: str,
    text: str,
    author: str,
    at: datetime | None = None,
) -> CaseOverlay:
    """Sign and store one overlay; returns its catalog row (not yet added)."""
    text = check_overlay_text(kind, text)
    when = at or utc_now()
    record = signer.sign(
        {
            "type": OVERLAY_TYPE,
            "case_id": moment.case_id,
            "moment_id": moment.id,
            "stream": stream,
            "start_offset": moment.start_offset,
            "end_offset": moment.end_offset,
            "kind": kind,
            "text": text,
            "author": author,
            "at": iso(when),
            "key_id": signer.key_id,
        }
    )
    raw = canonical_bytes(record, FORMAT)
    sha = sha256_bytes(raw)
    key = overlay_key(moment.case_id, sha)
    blobs.put_bytes(key, raw)
    return CaseOverlay(
        case_id=moment.case_id,
        moment_id=moment.id,
        kind=kind,
        text=text,
        author=author,
        at=when,
        blob_key=key,
        sha256=sha,
    )


def check_overlay(blobs: BlobStore, signer: Signer, row: CaseOverlay) -> CheckedOverlay:
    """Read an overlay's record back: its bytes, its signature and that it says what the
    catalog row says (a changed row or record reads as not verified)."""
    try:
        raw = blobs.get_bytes(row.blob_key)
    except NotFoundError:
        return CheckedOverlay(row, None, False)
    try:
        record = json.loads(raw)
    except ValueError:
        return CheckedOverlay(row, None, False)
    payload = record.get("payload", {}) if isinstance(record, dict) else {}
    ok = (
        sha256_bytes(raw) == row.sha256
        and check_signature(record, signer.public_key)
        and payload.get("type") == OVERLAY_TYPE
        and payload.get("case_id") == row.case_id
        and payload.get("moment_id") == row.moment_id
        and payload.get("kind") == row.kind
        and payload.get("text") == row.text
        and payload.get("author") == row.author
        and payload.get("at") == iso(row.at)
    )
    return CheckedOverlay(row, record if isinstance(record, dict) else None, ok)
