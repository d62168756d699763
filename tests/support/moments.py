"""Real recordings for tests of what is cut and packaged from them (test_moments.py,
test_package.py): a local file recorded into ~6 s segments from ``T0``, a gap and a
segment after it, and the check that an error reads as one line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from recorder.recorder import StreamRecorder
from storage.blobs.protocol import sha256_file
from storage.chain import ClosedSegment
from storage.models import Segment
from storage.stores import Stores

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def record(
    stores: Stores, video: Path, name: str = "shop", started_at: datetime = T0
) -> list[Segment]:
    """Record a local file into ~6 s segments (as fast as it reads) and stop."""
    StreamRecorder(
        stores.settings, stores.chain, name, str(video), segment_seconds=6.0, started_at=started_at
    ).run()
    return list(stores.catalog.segments(stores.catalog.get_stream(name).id))


def append_after_gap(stores: Stores, tmp_path: Path, name: str, gap_seconds: float) -> Segment:
    """A gap, then a real segment again (segment 1's bytes, captured in a new session)."""
    stream_id = stores.catalog.get_stream(name).id
    last = stores.catalog.last_segment(stream_id)
    assert last is not None
    copy = tmp_path / "again.ts"
    stores.blobs.download(_segment_row(stores, name, 1).blob_key, copy)
    gap_from = last.starts_at + timedelta(seconds=last.duration)
    gap_to = gap_from + timedelta(seconds=gap_seconds)
    stores.chain.append_gap(stream_id, name, gap_from, gap_to, "source dropped: test")
    closed = ClosedSegment(
        copy,
        sha256_file(copy),
        copy.stat().st_size,
        gap_to,
        _segment_row(stores, name, 1).duration,
        "later-session/seg00000000.ts",
    )
    return stores.chain.append_segment(stream_id, name, closed)


def _segment_row(stores: Stores, name: str, seq: int) -> Segment:
    found = stores.catalog.segment(stores.catalog.get_stream(name).id, seq)
    assert found is not None
    return found


def one_line(error: BaseException) -> str:
    text = str(error)
    assert text and "\n" not in text, repr(text)
    return text
