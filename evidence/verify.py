"""Re-read every stored byte of a stream and check hashes, chain and signatures.

The first artifact that does not match is named in an :class:`IntegrityError`. Given
the ``chain.head`` receipts a witness received (``storage/receipts.py``), it also checks
that the chain still holds every witnessed head: same index, same SHA-256, so a chain cut
back to an earlier signed head, or rewritten, fails. Without receipts, entries or
signatures stored beyond what the catalog indexes fail once the stream is not recording
(catalog rows were deleted).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from core.errors import IntegrityError, InvalidInputError, NotFoundError, TimestampError
from core.timeutil import iso, parse_iso
from evidence.event_batches import check_events_entry
from evidence.keyframes import check_keyframes_entry
from storage.blob_keys import entry_key, manifest_prefix, signature_key, timestamps_prefix
from storage.blobs.protocol import BlobStore, sha256_bytes
from storage.catalog import Catalog
from storage.chain import EVENTS_KIND, GENESIS, TIMELINE_TOLERANCE_SECONDS, UNTIMED_KINDS
from storage.receipts import CHAIN_HEAD_EVENT, HeadReceipt
from storage.signing import check_signature, format_version, load_public_key
from storage.timestamping import check_token, load_ca_bundle, stamped_bytes


@dataclass
class VerifyReport:
    stream: str
    entries: int = 0
    segments: int = 0
    gaps: int = 0
    ends: int = 0  # session end entries
    keyframes: int = 0  # chained keyframe JPEGs (OCR's sampled moments)
    event_batches: int = 0  # chained batches of stream events (chat, product cards)
    events: int = 0  # the events in them
    recorded_seconds: float = 0.0
    gap_seconds: float = 0.0
    signatures: int = 0
    signed_head: int | None = None
    first_start: datetime | None = None
    last_end: datetime | None = None
    bytes_checked: int = 0
    receipts: int = 0  # witnessed heads found in the chain
    timestamps: int = 0  # RFC 3161 tokens checked
    timestamps_referenced: int = 0  # of them, listed by a later chain entry
    stamped_head: int | None = None  # the last head a TSA stamped
    stamped_at: datetime | None = None  # its earliest time from a TSA
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The report as `verify --json` prints it and the API returns it."""
        return {
            "stream": self.stream,
            "ok": True,
            "entries": self.entries,
            "segments": self.segments,
            "gaps": self.gaps,
            "ends": self.ends,
            "keyframes": self.keyframes,
            "event_batches": self.event_batches,
            "events": self.events,
            "recorded_seconds": round(self.recorded_seconds, 3),
            "gap_seconds": round(self.gap_seconds, 3),
            "signatures": self.signatures,
            "signed_head": self.signed_head,
            "first_start": iso(self.first_start) if self.first_start else None,
            "last_end": iso(self.last_end) if self.last_end else None,
            "bytes_checked": self.bytes_checked,
            "receipts": self.receipts,
            "timestamps": self.timestamps,
            "timestamps_referenced": self.timestamps_referenced,
            "stamped_head": self.stamped_head,
            "stamped_at": iso(self.stamped_at) if self.stamped_at else None,
            "notes": self.notes,
        }


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
    catalog: Catalog,
    blobs: BlobStore,
    signing_keys_dir: Path,
    name: str,
    receipts: Sequence[HeadReceipt] = (),
    tsa_ca_bundle: Path | None = None,
) -> VerifyReport:
    witnessed = sorted(
        (r for r in receipts if r.event == CHAIN_HEAD_EVENT and r.subject == name),
        key=lambda r: r.head,
    )
    try:
        stream = catalog.get_stream(name)
    except NotFoundError:
        if witnessed:  # the whole stream is gone, yet a witness holds its heads
            _check_receipts(name, [], witnessed, signing_keys_dir, VerifyReport(stream=name))
        raise
    report = VerifyReport(stream=name)
    indexed = catalog.entries(stream.id)
    stored = set(blobs.list(manifest_prefix(name)))
    if not indexed and not stored and not witnessed:
        raise NotFoundError(f"stream {name!r} has no recorded evidence")

    hashes: list[str] = []
    prev = GENESIS
    last_version = 0
    timeline = _Timeline()
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
        try:  # the hash covers the stored bytes whatever their version; only known ones
            last_version = format_version(record)
        except ValueError:
            raise IntegrityError(key, "manifest entry has an unknown format version") from None
        if record.get("kind") == "keyframes":  # claims no time: checked against its segment
            frames, size = check_keyframes_entry(blobs, name, key, position, record)
            report.keyframes += frames
            report.bytes_checked += size
        elif record.get("kind") == EVENTS_KIND:  # stream events: their own time, no recording
            count, size = check_events_entry(blobs, key, record)
            report.event_batches += 1
            report.events += count
            report.bytes_checked += size
        else:
            timeline.check(key, position, record, *_check_body(blobs, key, record, report))
        _check_token_references(blobs, key, position, record, report)
        hashes.append(actual)
        prev = actual
    report.entries = len(indexed)
    _check_receipts(name, hashes, witnessed, signing_keys_dir, report)
    unindexed = sorted(stored - {entry_key(name, i) for i in range(len(indexed))})
    if unindexed and stream.status != "recording":
        raise IntegrityError(
            unindexed[0],
            f"is stored, but the catalog's chain ends at entry {len(indexed) - 1}:"
            " catalog rows were deleted (or a crash was not repaired: record or reopen it)",
        )
    if unindexed:
        report.notes.append(f"{len(unindexed)} stored entries not yet indexed")

    _check_signatures(catalog, blobs, signing_keys_dir, name, stream.id, hashes, report)
    _check_timestamps(catalog, blobs, name, stream.id, tsa_ca_bundle, report)
    if stream.status != "recording" and hashes and report.signed_head != len(hashes) - 1:
        raise IntegrityError(
            entry_key(name, len(hashes) - 1), "chain head of a stopped stream is not signed"
        )
    # Every clean stop ends its session with an end entry (since format 2, which came with
    # them); older chains have none at all, and are held to it only once they have one.
    timed = [row for row in indexed if row.kind not in UNTIMED_KINDS]
    last_kind = timed[-1].kind if timed else None
    if (
        stream.status in ("stopped", "ended")
        and last_kind not in (None, "end")
        and (last_version >= 2 or report.ends or stream.status == "ended")
    ):
        raise IntegrityError(
            entry_key(name, timed[-1].idx),
            f"the last recording session has no end entry, yet the stream is {stream.status}:"
            " it was cut short or its end was removed",
        )
    return report


class _Timeline:
    """Time, not only bytes: each entry starts no earlier than the entry before it ends
    (no time is claimed twice), ends no later than it was chained (no time is claimed
    before it passed), and no segment's bytes are chained twice."""

    def __init__(self) -> None:
        self.previous_end: datetime | None = None
        self.media: dict[str, int] = {}  # segment SHA-256 -> the entry that chained it

    def check(
        self, key: str, position: int, record: dict[str, Any], start: datetime, end: datetime
    ) -> None:
        slack = timedelta(seconds=TIMELINE_TOLERANCE_SECONDS)
        what = {"segment": "segment", "gap": "gap", "end": "session end"}[record["kind"]]
        try:
            chained_at = parse_iso(record["chained_at"])
        except (KeyError, TypeError, AttributeError, InvalidInputError):
            raise IntegrityError(key, "manifest entry is malformed (no chained_at)") from None
        before = self.previous_end
        if before is not None and start < before - slack:
            early = (before - start).total_seconds()
            raise IntegrityError(
                key,
                f"{what} starts at {iso(start)}, {early:.3f}s before the entry before it ends"
                f" ({iso(before)}): the same time is claimed twice",
            )
        if end > chained_at + slack:
            late = (end - chained_at).total_seconds()
            raise IntegrityError(
                key,
                f"{what} ends at {iso(end)}, {late:.3f}s after it was chained"
                f" ({iso(chained_at)}): it claims time that had not passed yet",
            )
        if record["kind"] == "segment":
            sha256 = str(record["segment"]["sha256"])
            if sha256 in self.media:
                raise IntegrityError(
                    key,
                    f"segment repeats the media of entry {self.media[sha256]} (same SHA-256"
                    f" {sha256[:16]}): the same media is chained twice",
                )
            self.media[sha256] = position
        self.previous_end = max(start, end)


def _check_body(
    blobs: BlobStore, key: str, record: dict[str, Any], report: VerifyReport
) -> tuple[datetime, datetime]:
    """Check an entry's body (a segment's bytes); returns the time it covers."""
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
        elif record["kind"] == "end":
            start = parse_iso(record["end"]["at"])
            if not isinstance(record["end"]["reason"], str):
                raise TypeError
            report.ends += 1
            end = start.timestamp()
        else:
            raise IntegrityError(key, f"unknown entry kind {record['kind']!r}")
    except (KeyError, TypeError, ValueError, InvalidInputError):
        raise IntegrityError(key, "manifest entry is malformed") from None
    if report.first_start is None:
        report.first_start = start
    report.last_end = datetime.fromtimestamp(end, tz=start.tzinfo)
    return start, report.last_end


def _check_receipts(
    name: str,
    hashes: list[str],
    witnessed: list[HeadReceipt],
    signing_keys_dir: Path,
    report: VerifyReport,
) -> None:
    """Every head a witness holds must still be in the chain, with the same SHA-256."""
    if not witnessed:
        return
    public_key = load_public_key(signing_keys_dir)
    for receipt in witnessed:
        if not check_signature(receipt.record, public_key):
            raise IntegrityError(
                f"the {receipt.label} receipt",
                "does not verify with this data directory's key: a head this installation"
                " did not sign, or its key was replaced",
            )
    lost = [r for r in witnessed if r.head >= len(hashes)]
    for receipt in witnessed:
        held = f"{receipt.label}, sha256 {receipt.head_sha256}, signed {receipt.signed_at}"
        if receipt in lost:
            more = f"; {len(lost)} witnessed heads are lost, up to {lost[-1].head}"
            raise IntegrityError(
                entry_key(name, receipt.head),
                f"is missing, but a witness holds it as a signed head ({held}): the chain"
                f" was cut back to {len(hashes)} entries" + (more if len(lost) > 1 else ""),
            )
        if hashes[receipt.head] != receipt.head_sha256:
            raise IntegrityError(
                entry_key(name, receipt.head),
                f"is not the signed head a witness holds ({held}): the chain was rewritten",
            )
        report.receipts += 1


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
    rows = catalog.signatures(stream_id)
    unlisted = sorted(stored - {signature_key(name, row.head_idx) for row in rows})
    if unlisted and catalog.get_stream(name).status != "recording":
        # Signed, stored, then dropped from the catalog: a head the chain may have lost.
        raise IntegrityError(
            unlisted[0], "is stored, but the catalog does not list it: catalog rows were deleted"
        )
    for row in rows:
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


def _check_token_references(
    blobs: BlobStore, key: str, position: int, record: dict[str, Any], report: VerifyReport
) -> None:
    """The tokens an entry lists (storage/chain.py) are stored, unchanged, and stamp a
    head before the entry; what each stamps is checked with the stored tokens below."""
    listed = record.get("timestamps", [])
    if not isinstance(listed, list):
        raise IntegrityError(key, "manifest entry's timestamps are not a list")
    for ref in listed:
        try:
            token_key, sha, head = ref["blob_key"], ref["sha256"], ref["head_index"]
        except (KeyError, TypeError):
            raise IntegrityError(key, "manifest entry lists a malformed time-stamp") from None
        if not isinstance(head, int) or not 0 <= head < position:
            raise IntegrityError(key, f"manifest entry lists a time-stamp of head {head}")
        try:
            raw = blobs.get_bytes(token_key)
        except NotFoundError:
            raise IntegrityError(
                token_key, f"time-stamp token listed in entry {position} is missing"
            ) from None
        if sha256_bytes(raw) != sha:
            raise IntegrityError(
                token_key, f"time-stamp token does not match the SHA-256 entry {position} lists"
            )
        report.timestamps_referenced += 1


_TOKEN_HEAD = re.compile(r"/(\d{8})\.[0-9a-f]+\.tsr$")


def _check_timestamps(
    catalog: Catalog,
    blobs: BlobStore,
    name: str,
    stream_id: int,
    tsa_ca_bundle: Path | None,
    report: VerifyReport,
) -> None:
    """Every RFC 3161 token, indexed or stored, stamps the signed bytes of its head and,
    given the TSA CA bundle, verifies against it (storage/timestamping)."""
    rows = {row.blob_key: row for row in catalog.timestamp_tokens(stream_id)}
    stored = set(blobs.list(timestamps_prefix(name)))
    if not rows and not stored:
        return
    ca = load_ca_bundle(tsa_ca_bundle) if tsa_ca_bundle else []
    signed = {row.head_idx: row for row in catalog.signatures(stream_id)}
    messages: dict[int, bytes] = {}
    for key in sorted(rows.keys() | stored):
        row = rows.get(key)
        found = _TOKEN_HEAD.search(key)
        head = row.head_idx if row is not None else int(found.group(1)) if found else -1
        if key not in stored:
            raise IntegrityError(key, "time-stamp token is missing")
        if head not in signed:
            raise IntegrityError(key, "time-stamp token stamps no signed head of this stream")
        raw = blobs.get_bytes(key)
        report.bytes_checked += len(raw)
        if head not in messages:  # the signatures were checked above: readable
            messages[head] = stamped_bytes(blobs.get_bytes(signed[head].blob_key))
        try:
            info = check_token(raw, messages[head], ca)
        except TimestampError as exc:
            raise IntegrityError(key, f"time-stamp token {exc}") from None
        if row is not None and row.sha256 != sha256_bytes(raw):
            raise IntegrityError(key, "time-stamp token does not match its recorded SHA-256")
        report.timestamps += 1
        if report.stamped_head is None or head > report.stamped_head:
            report.stamped_head, report.stamped_at = head, info.gen_time
        elif head == report.stamped_head and report.stamped_at is not None:
            report.stamped_at = min(report.stamped_at, info.gen_time)
    if not ca:
        report.notes.append(
            "time-stamp tokens were checked against their heads but not against a TSA CA"
            " (set LIVEWITNESS_TSA_CA_BUNDLE)"
        )
    if stored - rows.keys():
        report.notes.append(f"{len(stored - rows.keys())} stored time-stamp tokens not indexed")
