"""Receipts: signed heads handed to witnesses outside the installation.

Each signed head (a stream's chain head, the audit log's head) is queued in the catalog
as a receipt where it is signed, and posted to the webhooks by the notifier
(``compliance/alerts.py``) as a ``chain.head`` or ``audit.head`` event. Whoever keeps the
receipts can later show that the installation once signed a head it no longer has
(truncation) or now has with another hash (a rewrite): ``verify --receipts``.

A receipt is the signed record exactly as stored (``signature``), with its fields copied
to the top for readers; the copies are checked against the signed payload when a
receipt is read back (:func:`parse_receipts`), so the signature is what counts. When a
TSA stamps a head, its token follows as a ``timestamp`` event.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInputError
from core.timeutil import iso
from storage.models import Receipt, TimestampToken

CHAIN_HEAD_EVENT = "chain.head"
AUDIT_HEAD_EVENT = "audit.head"
TIMESTAMP_EVENT = "timestamp"  # an RFC 3161 token over a head: :func:`timestamp_payload`
HEAD_EVENTS = (CHAIN_HEAD_EVENT, AUDIT_HEAD_EVENT)
AUDIT_SUBJECT = "audit"  # the receipts table's subject for the audit log's heads

# The field of each receipt's position in its log: a chain entry index, an audit seq.
_HEAD_FIELD = {CHAIN_HEAD_EVENT: "head_index", AUDIT_HEAD_EVENT: "head_seq"}


def timestamp_payload(
    subject: str, head: int, head_sha256: str, token: TimestampToken, raw: bytes
) -> dict[str, Any]:
    """The ``timestamp`` event of a token a TSA gave a signed head: the token itself
    (base64 of the TSA's response) with what it stamps, so a witness holds trusted time
    for the head even if the installation later loses the token. Tokens arrive after
    their head's ``chain.head``/``audit.head`` receipt (the TSAs are asked in the
    background), hence an event of their own."""
    payload: dict[str, Any] = {"event": TIMESTAMP_EVENT, "log": token.log}
    if token.log == "chain":
        payload.update({"stream": subject, "head_index": head})
    else:
        payload["head_seq"] = head
    payload.update(
        {
            "head_sha256": head_sha256,
            "tsa_url": token.tsa_url,
            "gen_time": iso(token.gen_time),
            "serial": token.serial,
            "imprint": token.imprint,
            "blob_key": token.blob_key,
            "token_sha256": token.sha256,
            "token": base64.b64encode(raw).decode(),
        }
    )
    return payload


@dataclass(frozen=True)
class HeadReceipt:
    """One received ``chain.head`` or ``audit.head`` payload, as its witness kept it."""

    event: str
    subject: str  # the stream's name; "audit" for the audit log
    head: int  # the chain entry index, or the audit event's seq
    head_sha256: str
    signed_at: str
    key_id: str
    record: dict[str, Any]  # the signed record ({"payload", "signature"})

    @property
    def label(self) -> str:
        """How messages name it: ``chain.head 7 of 'shop'``, ``audit.head 120``."""
        if self.event == CHAIN_HEAD_EVENT:
            return f"{self.event} {self.head} of {self.subject!r}"
        return f"{self.event} {self.head}"


def head_payload(event: str, record: dict[str, Any], blob_key: str) -> dict[str, Any]:
    """The webhook payload of a signed head record stored under ``blob_key``."""
    signed = record["payload"]
    payload: dict[str, Any] = {"event": event}
    if event == CHAIN_HEAD_EVENT:
        payload["stream"] = signed["stream"]
    field = _HEAD_FIELD[event]
    payload.update(
        {
            field: signed[field],
            "head_sha256": signed["head_sha256"],
            "signed_at": signed["signed_at"],
            "key_id": signed.get("key_id"),
            "blob_key": blob_key,
            "signature": record,
        }
    )
    return payload


def payload_json(payload: dict[str, Any]) -> str:
    """A webhook body as stored and posted."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True)


def receipt_row(event: str, subject: str, record: dict[str, Any], blob_key: str) -> Receipt:
    """The catalog row that queues a signed head for the webhooks."""
    payload = head_payload(event, record, blob_key)
    return Receipt(
        event=event,
        subject=subject,
        head_idx=payload[_HEAD_FIELD[event]],
        head_sha256=payload["head_sha256"],
        payload=payload_json(payload),
    )


def parse_receipts(text: str, source: str) -> list[HeadReceipt]:
    """Received payloads as JSON lines or one JSON array; other events are skipped (a
    witness may keep every webhook it got), a malformed head receipt is bad input."""
    stripped = text.strip()
    if not stripped:
        raise InvalidInputError(f"{source} holds no receipts")
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except ValueError as exc:
            raise InvalidInputError(f"{source} is not a JSON array: {exc}") from None
        return receipts_of(items, source)
    found = []
    for number, line in enumerate(stripped.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise InvalidInputError(f"{source} line {number} is not JSON: {exc}") from None
        found += _heads_among([(f"{source} line {number}", item)])
    return found


def receipts_of(items: list[Any], source: str) -> list[HeadReceipt]:
    """Head receipts among already decoded payloads (a JSON array, the API's body)."""
    return _heads_among([(f"{source} item {n}", item) for n, item in enumerate(items, 1)])


def _heads_among(items: list[tuple[str, Any]]) -> list[HeadReceipt]:
    found = []
    for where, item in items:
        if not isinstance(item, dict):
            raise InvalidInputError(f"{where} is not a JSON object")
        if item.get("event") in HEAD_EVENTS:
            found.append(_receipt(item, where))
    return found


def _receipt(item: dict[str, Any], where: str) -> HeadReceipt:
    event = item["event"]
    field = _HEAD_FIELD[event]
    record = item.get("signature")
    signed = record.get("payload") if isinstance(record, dict) else None
    if not isinstance(signed, dict) or not isinstance(record, dict):
        raise InvalidInputError(f"{where}: {event} receipt without its signed record")
    names = [field, "head_sha256", "signed_at", "key_id"]
    if event == CHAIN_HEAD_EVENT:
        names.append("stream")
    for name in names:
        if item.get(name) != signed.get(name):
            raise InvalidInputError(f"{where}: {name} differs from the signed record's")
    head, sha = signed.get(field), signed.get("head_sha256")
    if not isinstance(head, int) or isinstance(head, bool) or head < 0:
        raise InvalidInputError(f"{where}: {field} is not a position in a log")
    if not isinstance(sha, str) or len(sha) != 64:
        raise InvalidInputError(f"{where}: head_sha256 is not a SHA-256")
    if event == AUDIT_HEAD_EVENT and signed.get("log") != AUDIT_SUBJECT:
        raise InvalidInputError(f"{where}: audit.head receipt of another log")
    return HeadReceipt(
        event=event,
        subject=str(signed.get("stream", AUDIT_SUBJECT)),
        head=head,
        head_sha256=sha,
        signed_at=str(signed.get("signed_at")),
        key_id=str(signed.get("key_id")),
        record=record,
    )
