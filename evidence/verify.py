"""Re-read every stored byte of a stream and check hashes, chain and signatures.

The first artifact that does not match is named in an :class:`IntegrityError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.errors import IntegrityError, NotFoundError
from core.timeutil import parse_iso
from storage.blob_keys import entry_key, manifest_prefix, signature_key
from storage.blobs.protocol import BlobStore, sha256_bytes
from storage.catalog import Catalog
from storage.chain import GENESIS
from storage.signing import check_signature, load_public_key


@dataclass
class VerifyReport:
    stream: str
    entries: int = 0
    segments: int = 0
    gaps: int = 0
    recorded_seconds: float = 0.0
    gap_seconds: float = 0.0
    signatures: int = 0
    signed_head: int | None = None
    first_start: datetime | None = None
    last_end: datetime | None = None
    bytes_checked: int = 0
    notes: list[str] = field(default_factory=list)


def _load_entry(blobs: BlobStore, key: str) -> tuple[bytes, dict[str, Any]]:
    try:
        raw = blobs.get_bytes(key)
    except NotFoundError:
        raise IntegrityError(key, "manifest entry is missing") from None
    try:
        record = json.loads(raw)
        if not isinstance(record, dict):
            raise TypeError
    except (ValueError, TypeError):
        raise IntegrityError(key, "manifest entry is not valid JSON") from None
    return raw, record


def verify_stream(
    catalog: Catalog, blobs: BlobStore, signing_keys_dir: Path, name: str
) -> VerifyReport:
    stream = catalog.get_stream(name)
    report = VerifyReport(stream=name)
    indexed = catalog.entries(stream.id)
    stored = set(blobs.list(manifest_prefix(name)))
    if not indexed and not stored:
        raise NotFoundError(f"stream {name!r} has no recorded evidence")

    hashes: list[str] = []
    prev = GENESIS
    for position, row in enumerate(indexed):
        key = entry_key(name, position)
        raw, record = _load_entry(blobs, key)
        actual = sha256_bytes(raw)
        report.bytes_checked += len(raw)
        if row.idx != position or row.sha256 != actual:
            raise IntegrityError(key, "manifest entry does not match its recorded SHA-256")
        if record.get("index") != position or record.get("stream") != name:
            raise IntegrityError(key, "manifest entry is out of place")
        if record.get("prev") != prev:
            raise IntegrityError(key, "manifest entry does not link to the entry before it")
        _check_body(blobs, key, record, report)
        hashes.append(actual)
        prev = actual
    report.entries = len(indexed)
    if len(stored) > len(indexed):
        report.notes.append(f"{len(stored) - len(indexed)} stored entries not yet indexed")

    _check_signatures(catalog, blobs, signing_keys_dir, name, stream.id, hashes, report)
    if stream.status != "recording" and hashes and report.signed_head != len(hashes) - 1:
        raise IntegrityError(
            entry_key(name, len(hashes) - 1), "chain head of a stopped stream is not signed"
        )
    return report


def _check_body(blobs: BlobStore, key: str, record: dict[str, Any], report: VerifyReport) -> None:
    try:
        if record["kind"] == "segment":
            seg = record["segment"]
            start, duration = parse_iso(seg["start"]), float(seg["duration"])
            try:
                data = blobs.get_bytes(seg["key"])
            except NotFoundError:
                raise IntegrityError(seg["key"], "segment is missing") from None
            if len(data) != seg["size"] or sha256_bytes(data) != seg["sha256"]:
                raise IntegrityError(seg["key"], "segment does not match its SHA-256")
            report.segments += 1
            report.recorded_seconds += duration
            report.bytes_checked += len(data)
            end = start.timestamp() + duration
        elif record["kind"] == "gap":
            start, stop = parse_iso(record["gap"]["from"]), parse_iso(record["gap"]["to"])
            report.gaps += 1
            report.gap_seconds += max(0.0, (stop - start).total_seconds())
            end = stop.timestamp()
        else:
            raise IntegrityError(key, f"unknown entry kind {record['kind']!r}")
    except (KeyError, TypeError, ValueError):
        raise IntegrityError(key, "manifest entry is malformed") from None
    if report.first_start is None:
        report.first_start = start
    report.last_end = datetime.fromtimestamp(end, tz=start.tzinfo)


def _check_signatures(
    catalog: Catalog,
    blobs: BlobStore,
    signing_keys_dir: Path,
    name: str,
    stream_id: int,
    hashes: list[str],
    report: VerifyReport,
) -> None:
    public_key = load_public_key(signing_keys_dir)
    stored = set(blobs.list(f"streams/{name}/signatures/"))
    for row in catalog.signatures(stream_id):
        key = signature_key(name, row.head_idx)
        if key not in stored:
            raise IntegrityError(key, "signature is missing")
        try:
            record = json.loads(blobs.get_bytes(key))
            payload = record["payload"]
        except (ValueError, TypeError, KeyError):
            raise IntegrityError(key, "signature record is malformed") from None
        if not check_signature(record, public_key):
            raise IntegrityError(key, "signature does not verify with this data directory's key")
        idx = payload.get("head_index")
        if (
            payload.get("stream") != name
            or idx != row.head_idx
            or not isinstance(idx, int)
            or idx >= len(hashes)
            or payload.get("head_sha256") != hashes[idx]
        ):
            raise IntegrityError(key, "signature does not cover this chain")
        report.signatures += 1
        report.signed_head = idx
