"""Retention: which evidence has outlived ``retention_days``, and which of it is held.

Report only, by design: a segment, manifest entry or signature is a link of a hash chain
that ``verify`` re-reads byte for byte and that packages draw on; deleting one would make
every later check of its stream fail, and the catalog would point at blobs that are gone.
Until chains can be retired whole (a stream ended, its head signed and stamped, and its
deletion itself recorded), the clean-up says what could go and what must stay (held by a
case), and deletes nothing. Overlays (``overlays/``) are not evidence and never expire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.timeutil import utc_now
from storage.catalog import Catalog


@dataclass(frozen=True)
class RetentionReport:
    cutoff: datetime | None  # None: retention_days is 0, nothing expires
    expired: tuple[str, ...]  # blob keys older than the cutoff and not held
    held: tuple[str, ...]  # older than the cutoff, but a case holds them: kept
    expired_bytes: int


def retention_report(
    catalog: Catalog, retention_days: float, now: datetime | None = None
) -> RetentionReport:
    """Segments (and the manifest entries that chain them) that ended before the cutoff."""
    if retention_days <= 0:
        return RetentionReport(None, (), (), 0)
    cutoff = (now or utc_now()) - timedelta(days=retention_days)
    held_keys = catalog.held_blob_keys()
    expired: list[str] = []
    held: list[str] = []
    size = 0
    for stream in catalog.list_streams():
        segments = {s.seq: s for s in catalog.segments(stream.id)}
        for entry in catalog.entries(stream.id):
            if entry.ends_at >= cutoff:
                continue
            keys = [(entry.blob_key, 0)]
            segment = segments.get(entry.segment_seq) if entry.segment_seq is not None else None
            if segment is not None:
                keys.append((segment.blob_key, segment.size))
            for key, bytes_ in keys:
                if key in held_keys:
                    held.append(key)
                else:
                    expired.append(key)
                    size += bytes_
    return RetentionReport(cutoff, tuple(expired), tuple(held), size)
