"""On-screen text and keyframes: what OCR read in a stream's sampled frames."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select

from core.screen import ScreenLine, join_segments
from storage.catalog.engine import CatalogBase
from storage.models import Keyframe, ManifestEntry, ScreenText


class ScreenMixin(CatalogBase):
    """Keyframes (chained JPEGs) and the screen text read in them, per segment."""

    def add_keyframes(self, keyframes: Sequence[Keyframe]) -> None:
        """Idempotent: a keyframe already indexed (same blob) is left as it is."""
        with self.session() as s:
            for keyframe in keyframes:
                found = s.scalar(
                    select(Keyframe.id).where(
                        Keyframe.stream_id == keyframe.stream_id,
                        Keyframe.blob_key == keyframe.blob_key,
                    )
                )
                if found is None:
                    s.add(keyframe)

    def keyframes(
        self, stream_id: int, start: datetime | None = None, end: datetime | None = None
    ) -> Sequence[Keyframe]:
        with self.session() as s:
            query = select(Keyframe).where(Keyframe.stream_id == stream_id)
            if start is not None:
                query = query.where(Keyframe.at >= start)
            if end is not None:
                query = query.where(Keyframe.at <= end)
            return s.scalars(query.order_by(Keyframe.at, Keyframe.id)).all()

    def keyframe(self, stream_id: int, sha256: str) -> Keyframe | None:
        with self.session() as s:
            return s.scalar(
                select(Keyframe)
                .where(Keyframe.stream_id == stream_id, Keyframe.sha256 == sha256)
                .limit(1)
            )

    def keyframes_entry(self, stream_id: int, segment_seq: int) -> ManifestEntry | None:
        """The chain entry that lists a segment's keyframes, if it is chained."""
        with self.session() as s:
            return s.scalar(
                select(ManifestEntry)
                .where(
                    ManifestEntry.stream_id == stream_id,
                    ManifestEntry.kind == "keyframes",
                    ManifestEntry.segment_seq == segment_seq,
                )
                .order_by(ManifestEntry.idx)
                .limit(1)
            )

    def replace_screen_text(
        self, stream_id: int, segment_seq: int, lines: Sequence[ScreenLine]
    ) -> None:
        """A segment's screen text, read again: the rows it had are replaced at once."""
        with self.session() as s:
            s.execute(
                delete(ScreenText).where(
                    ScreenText.stream_id == stream_id, ScreenText.segment_seq == segment_seq
                )
            )
            s.add_all(
                ScreenText(
                    stream_id=stream_id,
                    segment_seq=segment_seq,
                    text=line.text,
                    search=line.search,
                    box=json.dumps([list(corner) for corner in line.box]),
                    confidence=line.confidence,
                    first_seen_at=line.first_seen_at,
                    last_seen_at=line.last_seen_at,
                    first_offset=line.first_offset,
                    last_offset=line.last_offset,
                    open_start=line.open_start,
                    open_end=line.open_end,
                    keyframe_key=line.keyframe_key,
                )
                for line in lines
            )

    def screen_text(
        self,
        stream_id: int,
        stream: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[ScreenLine]:
        """A stream's on-screen text seen between ``start`` and ``end`` (either open), in
        time order, a line seen across a segment cut joined into one record."""
        with self.session() as s:
            query = select(ScreenText).where(ScreenText.stream_id == stream_id)
            if end is not None:
                query = query.where(ScreenText.first_seen_at <= end)
            if start is not None:
                query = query.where(ScreenText.last_seen_at >= start)
            rows = s.scalars(query.order_by(ScreenText.first_seen_at, ScreenText.id)).all()
        lines = [screen_line(row, stream) for row in rows]
        return join_segments(lines)


def screen_line(row: ScreenText, stream: str) -> ScreenLine:
    """A stored line of on-screen text as readers get it (one segment's)."""
    return ScreenLine(
        stream=stream,
        segment_seq=row.segment_seq,
        text=row.text,
        box=tuple((float(x), float(y)) for x, y in json.loads(row.box)),
        confidence=row.confidence,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        first_offset=row.first_offset,
        last_offset=row.last_offset,
        keyframe_key=row.keyframe_key,
        open_start=row.open_start,
        open_end=row.open_end,
        segments=(row.segment_seq,),
    )
