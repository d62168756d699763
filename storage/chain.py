"""A stream's evidence chain: segments and gaps as hash-linked manifest entries.

Every entry is its own immutable blob (``streams/NAME/manifest/00000007.json``) holding
the SHA-256 of the entry before it, so the chain proves order and completeness. The
catalog indexes the entries; at open, entries that reached the blob store but not the
catalog (a crash between the two) are adopted, so every step can be repeated safely.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from core.errors import ImmutableBlobError, IntegrityError, NotFoundError
from core.jobs import SEGMENT_JOBS
from core.timeutil import iso, parse_iso, utc_now
from storage.blob_keys import check_stream_name, entry_key, segment_key, signature_key
from storage.blobs.protocol import BlobStore, sha256_bytes
from storage.catalog import Catalog
from storage.models import ManifestEntry, Segment, Signature
from storage.signing import Signer, canonical_json

GENESIS = "0" * 64


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


class EvidenceChain:
    def __init__(self, catalog: Catalog, blobs: BlobStore, signer: Signer) -> None:
        self.catalog = catalog
        self.blobs = blobs
        self.signer = signer

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

    def _index_entry(self, stream_id: int, name: str, record: dict[str, Any], sha: str) -> None:
        idx = record["index"]
        if record["kind"] == "segment":
            seg = record["segment"]
            starts_at = parse_iso(seg["start"])
            ends_at = starts_at + timedelta(seconds=seg["duration"])
            seq = seg["seq"]
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
            for kind in SEGMENT_JOBS:
                self.catalog.enqueue(kind, stream_id, seq)

    def _append(self, stream_id: int, name: str, kind: str, body: dict[str, Any]) -> int:
        head = self.catalog.head(stream_id)
        idx = 0 if head is None else head.idx + 1
        record = {
            "v": 1,
            "stream": name,
            "index": idx,
            "prev": GENESIS if head is None else head.sha256,
            "kind": kind,
            kind: body,
            "chained_at": iso(utc_now()),
        }
        raw = canonical_json(record)
        self.blobs.put_bytes(entry_key(name, idx), raw)
        self._index_entry(stream_id, name, record, sha256_bytes(raw))
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
        self._append(stream_id, name, "segment", body)
        found = self.catalog.segment_by_capture(stream_id, closed.capture)
        if found is None:  # pragma: no cover - _append indexes it
            raise NotFoundError(f"segment {key} vanished from the catalog")
        return found

    def append_gap(
        self, stream_id: int, name: str, start: datetime, end: datetime, reason: str
    ) -> int:
        body = {"from": iso(start), "to": iso(end), "reason": reason}
        return self._append(stream_id, name, "gap", body)

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
            self.blobs.put_bytes(key, canonical_json(record))
        except ImmutableBlobError:
            # This head was signed before (e.g. periodically, then at stop): keep that one.
            stored = json.loads(self.blobs.get_bytes(key))
            signed_at = parse_iso(stored["payload"]["signed_at"])
        signature = Signature(
            stream_id=stream_id,
            head_idx=head.idx,
            head_sha256=head.sha256,
            blob_key=key,
            signed_at=signed_at,
        )
        self.catalog.add_signature(signature)
        return signature
