"""What the indexer follows besides transcripts: stream events and on-screen text as they
are stored (by catalog id, as transcripts are followed), for search and the timeline."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, select

from core.screen import ScreenLine
from storage.catalog.engine import CatalogBase
from storage.catalog.screen import screen_line
from storage.models import EventRow, ManifestEntry, ScreenText


class TimelineMixin(CatalogBase):
    """Events and screen text newer than a catalog id, across streams."""

    def events_after(
        self, after_id: int, kinds: Collection[str], limit: int = 1000
    ) -> Sequence[EventRow]:
        """Events of ``kinds`` stored after the row ``after_id``, in storing order."""
        with self.session() as s:
            return s.scalars(
                select(EventRow)
                .where(EventRow.id > after_id, EventRow.kind.in_(list(kinds)))
                .order_by(EventRow.id)
                .limit(limit)
            ).all()

    def last_event_id(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.max(EventRow.id))) or 0)

    def screen_text_after(self, after_id: int) -> tuple[int, set[tuple[int, int]]]:
        """(the newest screen-text row id, the (stream id, segment) pairs of rows stored
        after ``after_id``): a segment read again gets new rows, so it shows up here."""
        with self.session() as s:
            rows = s.execute(
                select(ScreenText.id, ScreenText.stream_id, ScreenText.segment_seq).where(
                    ScreenText.id > after_id
                )
            ).all()
        newest = max((int(r[0]) for r in rows), default=after_id)
        return newest, {(int(r[1]), int(r[2])) for r in rows}

    def screen_top(self) -> tuple[int, int, str] | None:
        """(stream id, segment, a digest of its rows) of the segment holding the newest
        screen-text row. SQLite hands the ids of deleted rows at the top out again, so a
        segment read again last can come back under the same ids: its digest tells."""
        with self.session() as s:
            newest = s.execute(
                select(ScreenText.stream_id, ScreenText.segment_seq)
                .order_by(ScreenText.id.desc())
                .limit(1)
            ).first()
            if newest is None:
                return None
            stream_id, seq = int(newest[0]), int(newest[1])
            rows = s.execute(
                select(ScreenText.id, ScreenText.text, ScreenText.first_offset)
                .where(ScreenText.stream_id == stream_id, ScreenText.segment_seq == seq)
                .order_by(ScreenText.id)
            ).all()
        digest = hashlib.sha256(json.dumps([list(r) for r in rows]).encode()).hexdigest()
        return stream_id, seq, digest

    def gaps_between(
        self, stream_id: int, start: datetime, end: datetime
    ) -> Sequence[ManifestEntry]:
        """The stream's chained gaps that overlap [start, end], by time."""
        with self.session() as s:
            return s.scalars(
                select(ManifestEntry)
                .where(
                    ManifestEntry.stream_id == stream_id,
                    ManifestEntry.kind == "gap",
                    ManifestEntry.starts_at <= end,
                    ManifestEntry.ends_at >= start,
                )
                .order_by(ManifestEntry.starts_at)
            ).all()

    def screen_rows(self, stream_id: int, stream: str, seqs: Collection[int]) -> list[ScreenLine]:
        """The screen-text records of some segments as stored (one per segment: not
        joined across cuts), by time."""
        with self.session() as s:
            rows = s.scalars(
                select(ScreenText)
                .where(ScreenText.stream_id == stream_id, ScreenText.segment_seq.in_(list(seqs)))
                .order_by(ScreenText.first_seen_at, ScreenText.id)
            ).all()
        return [screen_line(row, stream) for row in rows]
