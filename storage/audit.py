"""The audit log: every search, moment view, export and admin change, hash-chained.

Each event's SHA-256 covers its sequence number, time, actor, action, details and the
previous event's SHA-256 (canonical JSON, as the manifests), so deleting, reordering or
editing an event breaks every later link; :func:`verify_audit` names the first break.
New events are hashed over RFC 8785 bytes, with ``"v": 2`` inside what is hashed and in
the row's ``format_version``; rows from before it (no version) are version 1, the legacy
form (docs/formats.md).

A hash chain alone cannot show that its last events were cut off, or that it was
rewritten with every later hash recomputed: so its head is signed with the
installation's Ed25519 key (:class:`AuditLog`: every ``audit_sign_every_events`` events,
every ``audit_sign_interval_seconds``, and when the API stops), stored as an immutable
blob (``audit/heads/<seq>.json``) and posted to the webhooks as an ``audit.head``
receipt. :func:`verify_audit` checks the log against every stored head (and the
receipts a witness gives it): a head beyond the log's end, a head whose hash the log no
longer has, or a head that does not verify fails the check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.errors import ImmutableBlobError, NotFoundError, StorageError, TimestampError
from core.settings import Settings
from core.timeutil import iso, utc_now
from storage.blob_keys import AUDIT_HEADS_PREFIX, AUDIT_TIMESTAMPS_PREFIX, audit_head_key
from storage.blobs.protocol import BlobStore, sha256_bytes
from storage.catalog import SIGNATURES_STORED, Catalog
from storage.models import AuditEvent
from storage.receipts import AUDIT_HEAD_EVENT, AUDIT_SUBJECT, HeadReceipt, receipt_row
from storage.signing import FORMAT, LEGACY_FORMAT, Signer, canonical_bytes, check_signature
from storage.timestamping.tokens import check_token, load_ca_bundle, stamped_bytes

log = logging.getLogger(__name__)

GENESIS = "0" * 64


def event_digest(
    seq: int,
    at: str,
    actor: str,
    role: str,
    action: str,
    details: str,
    prev: str,
    version: int = LEGACY_FORMAT,
) -> str:
    """The SHA-256 of an event in format ``version``; from version 2 on the version is
    part of what is hashed, so it cannot be changed without breaking the hash."""
    body: dict[str, Any] = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "role": role,
        "action": action,
        "details": json.loads(details),
        "prev_sha256": prev,
    }
    if version != LEGACY_FORMAT:
        body["v"] = version
    return hashlib.sha256(canonical_bytes(body, version)).hexdigest()


def record(catalog: Catalog, actor: str, role: str, action: str, details: dict[str, Any]) -> int:
    """Append one event; returns its sequence number."""
    text = canonical_bytes(details, FORMAT).decode()

    def link(previous: AuditEvent | None) -> AuditEvent:
        seq = previous.seq + 1 if previous else 1
        prev = previous.sha256 if previous else GENESIS
        at = utc_now()
        digest = event_digest(seq, iso(at), actor, role, action, text, prev, FORMAT)
        return AuditEvent(
            seq=seq,
            at=at,
            actor=actor,
            role=role,
            action=action,
            details=text,
            prev_sha256=prev,
            sha256=digest,
            format_version=FORMAT,
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
        "v": event.format_version or LEGACY_FORMAT,
    }


@dataclass(frozen=True)
class AuditCheck:
    events: int
    ok: bool
    first_bad_seq: int | None = None
    problem: str | None = None
    heads: int = 0  # signed heads checked: stored ones and witnesses' receipts
    timestamps: int = 0  # RFC 3161 tokens over signed heads checked
    signed_seq: int | None = None  # the last event a checked head covers


# -- signed heads ------------------------------------------------------------------------
@dataclass(frozen=True)
class SignedHead:
    """A signed audit head as stored (``audit/heads/<seq>.json``) or as a witness holds it."""

    seq: int
    sha256: str
    signed_at: str
    where: str  # its blob key, or the receipt it came from
    record: dict[str, Any]


class AuditLog:
    """The audit log with its signed heads. Events recorded through it sign the head
    every ``audit_sign_every_events`` events (by seq, so any process appending the Nth
    event signs, with no state to share); :meth:`follow` signs a grown head every
    ``audit_sign_interval_seconds`` and once more when it stops."""

    def __init__(
        self, catalog: Catalog, blobs: BlobStore, signer: Signer, settings: Settings
    ) -> None:
        self.catalog = catalog
        self.blobs = blobs
        self.signer = signer
        self.settings = settings

    def record(self, actor: str, role: str, action: str, details: dict[str, Any]) -> int:
        seq = record(self.catalog, actor, role, action, details)
        if seq % self.settings.audit_sign_every_events == 0:
            self.sign_quietly()
        return seq

    def sign_head(self) -> SignedHead | None:
        """Sign the last event unless a head already covers it; None when nothing new."""
        last = self.catalog.last_audit_event()
        signed = self.catalog.last_receipt(AUDIT_HEAD_EVENT, AUDIT_SUBJECT)
        # A signed head beyond the log's end means events were deleted: never sign over it.
        if last is None or (signed is not None and signed.head_idx >= last.seq):
            return None
        key = audit_head_key(last.seq)
        record = self.signer.sign(
            {
                "log": AUDIT_SUBJECT,
                "head_seq": last.seq,
                "head_sha256": last.sha256,
                "signed_at": iso(utc_now()),
                "key_id": self.signer.key_id,
            }
        )
        try:
            self.blobs.put_bytes(key, canonical_bytes(record, FORMAT))
        except ImmutableBlobError:
            # Another process signed this head first: that record is the one that counts.
            record = json.loads(self.blobs.get_bytes(key))
        # Queued for the webhooks (compliance/ posts it), so a witness holds this head.
        self.catalog.add_receipt(receipt_row(AUDIT_HEAD_EVENT, AUDIT_SUBJECT, record, key))
        # Wakes this process's stamper: audit heads get RFC 3161 tokens like chain heads.
        self.catalog.changes.mark(SIGNATURES_STORED)
        return _signed_head(record, key)

    def sign_quietly(self) -> None:
        try:
            self.sign_head()
        except StorageError as exc:
            # Serving requests matters more than this head; the next one signs again.
            log.warning("could not sign the audit log's head: %s", exc)

    def follow(self, stop: threading.Event) -> None:
        """Sign a grown head every interval until ``stop``, then once more."""
        try:
            while not stop.wait(self.settings.audit_sign_interval_seconds):
                self.sign_quietly()
        finally:
            self.sign_quietly()


def _signed_head(record: dict[str, Any], where: str) -> SignedHead:
    """Raises ``KeyError``/``TypeError``/``ValueError`` for a record that is no head."""
    payload = record["payload"]
    seq, sha = payload["head_seq"], payload["head_sha256"]
    if payload.get("log") != AUDIT_SUBJECT or not isinstance(seq, int) or not isinstance(sha, str):
        raise ValueError("not an audit head")
    return SignedHead(seq, sha, str(payload.get("signed_at")), where, record)


def _checked_heads(
    blobs: BlobStore, public_key: Ed25519PublicKey, receipts: Sequence[HeadReceipt]
) -> list[SignedHead] | AuditCheck:
    """Every stored head and every witnessed one, each verified; the first bad one fails."""
    heads = []
    for key in blobs.list(AUDIT_HEADS_PREFIX):
        try:
            head = _signed_head(json.loads(blobs.get_bytes(key)), key)
        except NotFoundError:
            continue  # listed, then gone: the check below misses nothing it could use
        except (ValueError, KeyError, TypeError):
            return AuditCheck(0, False, None, f"{key} is not a signed audit head")
        if key != audit_head_key(head.seq):
            return AuditCheck(0, False, head.seq, f"{key} is out of place")
        heads.append(head)
    for receipt in receipts:
        if receipt.event == AUDIT_HEAD_EVENT:
            heads.append(_signed_head(receipt.record, f"the {receipt.label} receipt"))
    for head in heads:
        if not check_signature(head.record, public_key):
            return AuditCheck(
                0,
                False,
                head.seq,
                f"{head.where} does not verify with this installation's key (a forged head)",
            )
    return heads


def _checked_tokens(
    catalog: Catalog, blobs: BlobStore, tsa_ca_bundle: Path | None
) -> int | AuditCheck:
    """Every indexed or stored token of an audit head stamps that head's signed bytes
    (and verifies against the TSA CA bundle, given one); returns how many were checked."""
    rows = {row.blob_key: row for row in catalog.timestamp_tokens(None)}
    stored = set(blobs.list(AUDIT_TIMESTAMPS_PREFIX))
    ca = load_ca_bundle(tsa_ca_bundle) if tsa_ca_bundle and (rows or stored) else []
    for key in sorted(rows.keys() | stored):
        row = rows.get(key)
        seq = row.head_idx if row is not None else _token_seq(key)
        try:
            raw = blobs.get_bytes(key)
            message = stamped_bytes(blobs.get_bytes(audit_head_key(seq)))
            check_token(raw, message, ca)
        except NotFoundError as exc:
            return AuditCheck(0, False, seq, f"{key}: {exc} (a time-stamp token or its head)")
        except (TimestampError, ValueError) as exc:
            return AuditCheck(0, False, seq, f"{key}: time-stamp token {exc}")
        if row is not None and row.sha256 != sha256_bytes(raw):
            return AuditCheck(0, False, seq, f"{key} does not match its recorded SHA-256")
    return len(rows.keys() | stored)


def _token_seq(key: str) -> int:
    name = key.removeprefix(AUDIT_TIMESTAMPS_PREFIX).split(".", 1)[0]
    return int(name) if name.isdigit() else -1


def verify_audit(
    catalog: Catalog,
    blobs: BlobStore | None = None,
    public_key: Ed25519PublicKey | None = None,
    receipts: Sequence[HeadReceipt] = (),
    tsa_ca_bundle: Path | None = None,
) -> AuditCheck:
    """Check the hash chain from its first event and, given the blob store and the key,
    the log against every signed head (stored, or in a witness's ``audit.head``
    receipts) and every head's RFC 3161 tokens: cut-off events, a rewrite with recomputed
    hashes, a forged head and a token that stamps something else fail."""
    heads: list[SignedHead] = []
    stamped = 0
    if blobs is not None and public_key is not None:
        checked = _checked_heads(blobs, public_key, receipts)
        if isinstance(checked, AuditCheck):
            newest = catalog.last_audit_event()
            return replace(checked, events=newest.seq if newest else 0)
        heads = checked
        tokens = _checked_tokens(catalog, blobs, tsa_ca_bundle)
        if isinstance(tokens, AuditCheck):
            newest = catalog.last_audit_event()
            return replace(tokens, events=newest.seq if newest else 0)
        stamped = tokens
    check = replace(_walk(catalog, {h.seq: h for h in heads}), heads=len(heads), timestamps=stamped)
    if not check.ok:
        return check
    beyond = [h for h in heads if h.seq > check.events]
    if beyond:
        last = max(beyond, key=lambda h: h.seq)
        return replace(
            check,
            ok=False,
            first_bad_seq=check.events + 1,
            problem=f"{last.where} (signed {last.signed_at}) covers events up to {last.seq},"
            f" but the log ends at event {check.events}: events were deleted",
        )
    return check


def _walk(catalog: Catalog, signed: dict[int, SignedHead]) -> AuditCheck:
    prev, expected_seq, count, covered = GENESIS, 1, 0, None
    for event in catalog.audit_events():
        count += 1
        if event.seq != expected_seq:
            return AuditCheck(count, False, event.seq, f"expected event {expected_seq} here")
        if event.prev_sha256 != prev:
            return AuditCheck(count, False, event.seq, "does not link to the event before")
        try:
            digest = event_digest(
                event.seq,
                iso(event.at),
                event.actor,
                event.role,
                event.action,
                event.details,
                event.prev_sha256,
                event.format_version or LEGACY_FORMAT,
            )
        except ValueError:  # details that are not JSON, or a version this release lacks
            digest = None
        if digest != event.sha256:
            return AuditCheck(count, False, event.seq, "its content does not match its hash")
        head = signed.get(event.seq)
        if head is not None:
            if head.sha256 != event.sha256:
                return AuditCheck(
                    count,
                    False,
                    event.seq,
                    f"is not the event signed in {head.where} (signed {head.signed_at}):"
                    " the log was rewritten up to here",
                    signed_seq=covered,
                )
            covered = event.seq
        prev, expected_seq = event.sha256, expected_seq + 1
    return AuditCheck(count, True, signed_seq=covered)
