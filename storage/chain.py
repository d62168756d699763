"""A stream's evidence chain: segments, gaps and session ends as hash-linked manifest
entries.

Every entry is its own immutable blob (``streams/NAME/manifest/00000007.json``) holding
the SHA-256 of the entry before it, so the chain proves order and completeness. The
catalog indexes the entries; at open, entries that reached the blob store but not the
catalog (a crash between the two) are adopted, so every step can be repeated safely.

An entry also lists, by hash, the RFC 3161 tokens (``storage/timestamping``) that arrived
since the entry before it (``timestamps``), so the chain itself holds its trusted times;
the tokens of a stopped stream's last head are bound to it by their imprint alone.

The chain is also a timeline: each entry covers wall-clock time that starts no earlier
than the entry before it ends and ends no later than it was chained (within
``TIMELINE_TOLERANCE_SECONDS``); a recording session that stops cleanly ends with an
``end`` entry (``{"reason": ..., "at": ...}``, ``at`` being where its time ends).

Entries of the kinds in :data:`UNTIMED_KINDS` attach material to time already chained
and claim none of their own: a ``keyframes`` entry lists, by SHA-256, the JPEGs of a
segment's sampled moments that OCR read text in (transcriber/ocr); an ``events`` entry
names a sealed JSONL batch of stream events (chat, product cards: storage/events.py) by
SHA-256, with its count and time range. Such entries are
written by other stages while a recorder appends, so an append that finds its place
taken (the store is write-once) reads the new entries and tries the next place.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from core.errors import ImmutableBlobError, IntegrityError, NotFoundError, StorageError
from core.jobs import SEGMENT_JOBS, TRANSCRIBE_JOB
from core.timeutil import iso, parse_iso, utc_now
from storage.blob_keys import (
    check_stream_name,
    entry_key,
    events_key,
    keyframe_key,
    segment_key,
    signature_key,
)
from storage.blobs.protocol import BlobStore, sha256_bytes
from storage.catalog import SIGNATURES_STORED, Catalog
from storage.models import EventBatch, Keyframe, ManifestEntry, Segment, Signature, TimestampToken
from storage.receipts import CHAIN_HEAD_EVENT, receipt_row
from storage.signing import FORMAT, Signer, canonical_bytes

GENESIS = "0" * 64
TIMELINE_TOLERANCE_SECONDS = 0.5  # ms-rounded times and a frame of slack; verify uses it
EVENTS_KIND = "events"  # a sealed batch of stream events (storage/events.py)
UNTIMED_KINDS = frozenset({"keyframes", EVENTS_KIND})  # entries that claim no time of their own
APPEND_ATTEMPTS = 20  # places tried when other writers keep taking the next one


def token_reference(token: TimestampToken) -> dict[str, Any]:
    """How a chain entry lists an RFC 3161 token that arrived before it."""
    return {
        "head_index": token.head_idx,
        "tsa_id": token.tsa_id,
        "blob_key": token.blob_key,
        "sha256": token.sha256,
        "gen_time": iso(token.gen_time),
    }


@dataclass(frozen=True)
class ClosedSegment:
    """A finished segment file on local disk, ready to be chained."""

    path: Path
    sha256: str
    size: int
    starts_at: datetime
    duration: float
    capture: str  # session/file name it was captured as; unique within the stream
    recovered: bool = False
    # First and last media sequence number of the HLS source segments it holds, so a
    # later recorder of the stream continues after them (recorder/hls.py).
    media_sequence: tuple[int, int] | None = None
    # False when the recorder's PCM tap sent its speech as chunks (recorder/speech.py):
    # the segment is then not transcribed again whole.
    transcribe: bool = True


@dataclass(frozen=True)
class SealedBatch:
    """A batch of stream events ready to be chained (storage/events.py seals them)."""

    data: bytes  # JSONL: one canonical JSON event per line, by time
    sha256: str
    count: int
    late: int  # how many of them were sealed after their window
    first_at: datetime
    last_at: datetime
    window_end: datetime  # the windows before this are closed
    batch: str  # the sealer's claim on its events (storage/catalog/events.py)


@dataclass(frozen=True)
class StoredKeyframe:
    """A keyframe JPEG to chain: its bytes, where in the segment and when it was taken."""

    data: bytes
    pts: float  # seconds into the segment
    at: datetime


class EvidenceChain:
    def __init__(
        self,
        catalog: Catalog,
        blobs: BlobStore,
        signer: Signer,
        segment_jobs: tuple[str, ...] = SEGMENT_JOBS,
    ) -> None:
        self.catalog = catalog
        self.blobs = blobs
        self.signer = signer
        self.segment_jobs = segment_jobs  # queued for every chained segment
        self._appending = threading.Lock()  # one appender at a time in this process

    def open_stream(self, name: str, source: str | None = None) -> int:
        """Create or reopen a stream and repair its catalog index from the stored entries."""
        check_stream_name(name)
        stream = self.catalog.ensure_stream(name, source)
        self._adopt_stored_entries(stream.id, name)
        return stream.id

    def _adopt_stored_entries(self, stream_id: int, name: str) -> None:
        head = self.catalog.head(stream_id)
        idx = 0 if head is None else head.idx + 1
        prev = GENESIS if head is None else head.sha256
        while self.blobs.stat(entry_key(name, idx)) is not None:
            raw = self.blobs.get_bytes(entry_key(name, idx))
            record = json.loads(raw)
            if record.get("prev") != prev or record.get("index") != idx:
                raise IntegrityError(entry_key(name, idx), "does not continue the chain")
            self._index_entry(stream_id, name, record, sha256_bytes(raw))
            prev = sha256_bytes(raw)
            idx += 1
        # The last step of an append (segment row, job) may be missing after a crash.
        last = self.catalog.head(stream_id)
        if last is not None and last.kind == "segment":
            record = json.loads(self.blobs.get_bytes(last.blob_key))
            self._index_entry(stream_id, name, record, last.sha256)

    def _index_entry(
        self,
        stream_id: int,
        name: str,
        record: dict[str, Any],
        sha: str,
        jobs: tuple[str, ...] | None = None,
    ) -> None:
        """Catalogue a stored entry; a segment's ``jobs`` (default: segment_jobs) are
        queued."""
        idx = record["index"]
        listed = [ref["blob_key"] for ref in record.get("timestamps", [])]
        self.catalog.mark_tokens_referenced(stream_id, listed, idx)
        if record["kind"] == "segment":
            seg = record["segment"]
            starts_at = parse_iso(seg["start"])
            ends_at = starts_at + timedelta(seconds=seg["duration"])
            seq = seg["seq"]
            reason = None
        elif record["kind"] == "end":
            end = record["end"]
            starts_at = ends_at = parse_iso(end["at"])
            seq = None
            reason = end["reason"]
        elif record["kind"] in UNTIMED_KINDS:
            # No time of its own: indexed where the timeline stood, so readers of the
            # head's time (the recorder's gaps and checks) see the timeline unchanged.
            before = self.catalog.entry(stream_id, idx - 1)
            if before is not None:
                starts_at = ends_at = before.ends_at
            elif record["kind"] == EVENTS_KIND:  # events may come before any recording
                starts_at = ends_at = parse_iso(record[EVENTS_KIND]["from"])
            else:
                raise IntegrityError(entry_key(name, idx), "attaches to no entry before it")
            seq = record[record["kind"]].get("segment")
            reason = None
        else:
            gap = record["gap"]
            starts_at, ends_at = parse_iso(gap["from"]), parse_iso(gap["to"])
            seq = None
            reason = gap["reason"]
        self.catalog.add_entry(
            ManifestEntry(
                stream_id=stream_id,
                idx=idx,
                kind=record["kind"],
                blob_key=entry_key(name, idx),
                sha256=sha,
                prev_sha256=record["prev"],
                segment_seq=seq,
                starts_at=starts_at,
                ends_at=ends_at,
                reason=reason,
            )
        )
        if record["kind"] == "segment":
            self.catalog.add_segment(
                Segment(
                    stream_id=stream_id,
                    seq=seq,
                    blob_key=seg["key"],
                    sha256=seg["sha256"],
                    size=seg["size"],
                    starts_at=starts_at,
                    duration=seg["duration"],
                    entry_idx=idx,
                    recovered=bool(seg.get("recovered", False)),
                    capture=seg["capture"],
                )
            )
            for kind in self.segment_jobs if jobs is None else jobs:
                self.catalog.enqueue(kind, stream_id, seq)
        elif record["kind"] == EVENTS_KIND:
            batch = record[EVENTS_KIND]
            self.catalog.add_event_batch(
                EventBatch(
                    stream_id=stream_id,
                    entry_idx=idx,
                    batch=batch["batch"],
                    blob_key=batch["key"],
                    sha256=batch["sha256"],
                    count=batch["count"],
                    late=batch["late"],
                    first_at=parse_iso(batch["from"]),
                    last_at=parse_iso(batch["to"]),
                    window_end=parse_iso(batch["window_end"]),
                )
            )
        elif record["kind"] == "keyframes":
            body = record["keyframes"]
            self.catalog.add_keyframes(
                [
                    Keyframe(
                        stream_id=stream_id,
                        segment_seq=body["segment"],
                        at=parse_iso(frame["at"]),
                        offset=frame["offset"],
                        blob_key=frame["key"],
                        sha256=frame["sha256"],
                        size=frame["size"],
                        entry_idx=idx,
                    )
                    for frame in body["frames"]
                ]
            )

    def _append(
        self,
        stream_id: int,
        name: str,
        kind: str,
        body: dict[str, Any],
        jobs: tuple[str, ...] | None = None,
    ) -> int:
        with self._appending:
            for _attempt in range(APPEND_ATTEMPTS):
                try:
                    return self._append_once(stream_id, name, kind, body, jobs)
                except ImmutableBlobError:
                    # Another process chained this place first (an OCR worker beside the
                    # recorder): index what it stored and take the next place.
                    self._adopt_stored_entries(stream_id, name)
        raise StorageError(f"could not append to the chain of {name!r}: its head keeps moving")

    def _append_once(
        self,
        stream_id: int,
        name: str,
        kind: str,
        body: dict[str, Any],
        jobs: tuple[str, ...] | None = None,
    ) -> int:
        head = self.catalog.head(stream_id)
        idx = 0 if head is None else head.idx + 1
        record = {
            "v": FORMAT,
            "stream": name,
            "index": idx,
            "prev": GENESIS if head is None else head.sha256,
            "kind": kind,
            kind: body,
            "chained_at": iso(utc_now()),
        }
        # Tokens that arrived since the entry before are listed by hash, so the chain
        # holds them: a token removed later shows in `verify`, not just its absence.
        tokens = self.catalog.unreferenced_tokens(stream_id)
        if tokens:
            record["timestamps"] = [token_reference(token) for token in tokens]
        raw = canonical_bytes(record, FORMAT)
        self.blobs.put_bytes(entry_key(name, idx), raw)
        # Indexed from the stored bytes, as a reader (or an adoption after a crash) sees
        # them: RFC 8785 writes a duration of 10.0 as 10.
        self._index_entry(stream_id, name, json.loads(raw), sha256_bytes(raw), jobs)
        return idx

    def append_segment(self, stream_id: int, name: str, closed: ClosedSegment) -> Segment:
        """Store, chain, catalog and queue one closed segment; repeating it is a no-op."""
        done = self.catalog.segment_by_capture(stream_id, closed.capture)
        if done is not None:
            return done
        last = self.catalog.last_segment(stream_id)
        seq = 0 if last is None else last.seq + 1
        key = segment_key(name, seq)
        self.blobs.put_file(key, closed.path, closed.sha256)
        body = {
            "seq": seq,
            "key": key,
            "sha256": closed.sha256,
            "size": closed.size,
            "start": iso(closed.starts_at),
            "duration": round(closed.duration, 6),
            "recovered": closed.recovered,
            "capture": closed.capture,
        }
        if closed.media_sequence is not None:
            body["media_sequence"] = list(closed.media_sequence)
        # Speech that came as chunks is not transcribed again whole.
        jobs = (
            None
            if closed.transcribe
            else tuple(k for k in self.segment_jobs if k != TRANSCRIBE_JOB)
        )
        self._append(stream_id, name, "segment", body, jobs)
        found = self.catalog.segment_by_capture(stream_id, closed.capture)
        if found is None:  # pragma: no cover - _append indexes it
            raise NotFoundError(f"segment {key} vanished from the catalog")
        return found

    def append_gap(
        self, stream_id: int, name: str, start: datetime, end: datetime, reason: str
    ) -> int:
        body = {"from": iso(start), "to": iso(end), "reason": reason}
        return self._append(stream_id, name, "gap", body)

    def append_keyframes(
        self, stream_id: int, name: str, segment: Segment, frames: list[StoredKeyframe]
    ) -> int:
        """Store a segment's keyframes (write-once, named by their SHA-256) and chain them
        in one ``keyframes`` entry that names the segment they were taken from."""
        first = self.catalog.first_segment(stream_id)
        base = (segment.starts_at - (first or segment).starts_at).total_seconds()
        listed = []
        for frame in frames:
            sha256 = sha256_bytes(frame.data)
            key = keyframe_key(name, segment.seq, frame.pts, sha256)
            self.blobs.put_bytes(key, frame.data)
            listed.append(
                {
                    "key": key,
                    "sha256": sha256,
                    "size": len(frame.data),
                    "pts": round(frame.pts, 3),
                    "at": iso(frame.at),
                    "offset": round(base + frame.pts, 3),
                }
            )
        body = {
            "segment": segment.seq,
            "segment_entry": segment.entry_idx,
            "segment_sha256": segment.sha256,
            "frames": listed,
        }
        return self._append(stream_id, name, "keyframes", body)

    def append_events(self, stream_id: int, name: str, batch: SealedBatch) -> int:
        """Store a sealed batch of stream events (JSONL, named by its SHA-256) and chain
        it in one ``events`` entry with its count and time range; returns its index."""
        key = events_key(name, batch.sha256)
        self.blobs.put_bytes(key, batch.data)
        body = {
            "key": key,
            "sha256": batch.sha256,
            "size": len(batch.data),
            "count": batch.count,
            "late": batch.late,
            "from": iso(batch.first_at),
            "to": iso(batch.last_at),
            "window_end": iso(batch.window_end),
            "batch": batch.batch,
        }
        return self._append(stream_id, name, EVENTS_KIND, body)

    def append_end(self, stream_id: int, name: str, reason: str, at: datetime) -> int:
        """End a recording session: why it ended, and where its recorded time ends. Sign
        the head after it."""
        return self._append(stream_id, name, "end", {"reason": reason, "at": iso(at)})

    def chained_media(self, stream_id: int, sha256: str) -> Segment | None:
        """The segment of this stream that already holds these exact bytes, if any: the
        recorder chains repeated media (a source replaying what it sent) only once."""
        return self.catalog.segment_by_sha256(stream_id, sha256)

    def last_media_sequence(self, stream_id: int, name: str) -> int | None:
        """The last HLS media sequence number the stream's latest segment holds, if it
        came from an HLS source."""
        last = self.catalog.last_segment(stream_id)
        if last is None:
            return None
        body = json.loads(self.blobs.get_bytes(entry_key(name, last.entry_idx))).get("segment", {})
        held = body.get("media_sequence")
        return int(held[1]) if isinstance(held, list) and len(held) == 2 else None

    def sign_head(self, stream_id: int, name: str) -> Signature | None:
        """Sign the current chain head (once per head); None for an empty chain."""
        head = self.catalog.head(stream_id)
        if head is None:
            return None
        key = signature_key(name, head.idx)
        signed_at = utc_now()
        record = self.signer.sign(
            {
                "stream": name,
                "head_index": head.idx,
                "head_sha256": head.sha256,
                "signed_at": iso(signed_at),
                "key_id": self.signer.key_id,
            }
        )
        try:
            self.blobs.put_bytes(key, canonical_bytes(record, FORMAT))
        except ImmutableBlobError:
            # This head was signed before (e.g. periodically, then at stop): keep that one.
            record = json.loads(self.blobs.get_bytes(key))
            signed_at = parse_iso(record["payload"]["signed_at"])
        signature = Signature(
            stream_id=stream_id,
            head_idx=head.idx,
            head_sha256=head.sha256,
            blob_key=key,
            signed_at=signed_at,
        )
        self.catalog.add_signature(signature)
        # Wakes this process's stamper (storage/timestamping): RFC 3161 tokens are asked
        # for in the background, so signing never waits for a TSA.
        self.catalog.changes.mark(SIGNATURES_STORED)
        # Queued for the webhooks (compliance/ posts it): a witness outside the
        # installation then holds this head, so cutting the chain back shows.
        self.catalog.add_receipt(receipt_row(CHAIN_HEAD_EVENT, name, record, key))
        return signature
