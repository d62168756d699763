"""Aggregates for storage.metrics and the stream listings: counts, never rows."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select

from storage.catalog.engine import CatalogBase
from storage.catalog.jobs import WAITING
from storage.models import (
    Alert,
    BannedHit,
    Job,
    ManifestEntry,
    Segment,
    Stream,
    WebhookDelivery,
)


@dataclass(frozen=True)
class StreamSummary:
    """A stream's recording at a glance, from aggregates rather than its rows."""

    segments: int = 0
    seconds: float = 0.0
    first_segment_at: datetime | None = None
    gaps: int = 0
    backlog: int = 0  # transcription jobs queued or running


class AggregatesMixin(CatalogBase):
    """Aggregates for storage.metrics, each one GROUP BY query that returns a few numbers
    per stream, status or category, never the rows themselves."""

    def stream_summaries(
        self, kind: str, stream_ids: Collection[int] | None = None
    ) -> dict[int, StreamSummary]:
        """Per stream id (all streams, or those of ``stream_ids``): segments, seconds,
        first segment time, gaps and the backlog of ``kind`` jobs, in three queries
        whatever the number of streams."""
        segments = select(
            Segment.stream_id,
            func.count(Segment.id),
            func.coalesce(func.sum(Segment.duration), 0.0),
            func.min(Segment.starts_at),
        ).group_by(Segment.stream_id)
        gaps = (
            select(ManifestEntry.stream_id, func.count(ManifestEntry.id))
            .where(ManifestEntry.kind == "gap")
            .group_by(ManifestEntry.stream_id)
        )
        backlog = (
            select(Job.stream_id, func.count(Job.id))
            .where(Job.kind == kind, Job.status.in_(WAITING))
            .group_by(Job.stream_id)
        )
        streams = select(Stream.id)
        if stream_ids is not None:
            wanted = list(stream_ids)
            streams = streams.where(Stream.id.in_(wanted))
            segments = segments.where(Segment.stream_id.in_(wanted))
            gaps = gaps.where(ManifestEntry.stream_id.in_(wanted))
            backlog = backlog.where(Job.stream_id.in_(wanted))
        with self.session() as s:
            ids = list(s.scalars(streams))
            segment_rows = s.execute(segments).all()
            gap_rows = s.execute(gaps).all()
            backlog_rows = s.execute(backlog).all()
        recorded = {sid: (int(n), float(sec), first) for sid, n, sec, first in segment_rows}
        gap_counts = {sid: int(n) for sid, n in gap_rows}
        waiting = {sid: int(n) for sid, n in backlog_rows}
        summaries = {}
        for sid in ids:
            count, seconds, first = recorded.get(sid, (0, 0.0, None))
            summaries[sid] = StreamSummary(
                segments=count,
                seconds=seconds,
                first_segment_at=first,
                gaps=gap_counts.get(sid, 0),
                backlog=waiting.get(sid, 0),
            )
        return summaries

    def job_status_counts(self, kind: str) -> dict[str, int]:
        """Jobs of a kind per status (queued, running, done, failed)."""
        with self.session() as s:
            rows = s.execute(
                select(Job.status, func.count(Job.id)).where(Job.kind == kind).group_by(Job.status)
            ).all()
        return {status: int(count) for status, count in rows}

    def recent_job_timings(self, kind: str, limit: int) -> list[tuple[float, float]]:
        """(segment seconds, processing seconds) of the last ``limit`` finished jobs.

        "Last" by job id, newest first: ids follow the recording, so these are the latest
        segments transcribed, and the primary key finds them without sorting the table.
        Processing time is finished_at - started_at of the job's final (successful) claim.
        """
        with self.session() as s:
            rows = s.execute(
                select(Segment.duration, Job.started_at, Job.finished_at)
                .join(
                    Segment,
                    and_(Segment.stream_id == Job.stream_id, Segment.seq == Job.segment_seq),
                )
                .where(
                    Job.kind == kind,
                    Job.status == "done",
                    Job.started_at.is_not(None),
                    Job.finished_at.is_not(None),
                )
                .order_by(Job.id.desc())
                .limit(limit)
            ).all()
        return [
            (float(duration), (finished - started).total_seconds())
            for duration, started, finished in rows
            if started is not None and finished is not None  # the query's filter, for mypy
        ]

    def alert_delivery_counts(self) -> dict[str, int]:
        """Alert deliveries (events of an alert's kind) per status (pending, delivered,
        failed)."""
        with self.session() as s:
            rows = s.execute(
                select(WebhookDelivery.status, func.count(WebhookDelivery.id))
                .where(WebhookDelivery.event.in_(select(Alert.kind).distinct()))
                .group_by(WebhookDelivery.status)
            ).all()
        return {status: int(count) for status, count in rows}

    def banned_hit_counts(self) -> dict[str, int]:
        """Banned-word hits per lexicon category."""
        with self.session() as s:
            rows = s.execute(
                select(BannedHit.category, func.count(BannedHit.id)).group_by(BannedHit.category)
            ).all()
        return {category: int(count) for category, count in rows}

    def stream_status_counts(self) -> dict[str, int]:
        """Streams per status (idle, recording, stopped, ...)."""
        with self.session() as s:
            rows = s.execute(
                select(Stream.status, func.count(Stream.id)).group_by(Stream.status)
            ).all()
        return {status: int(count) for status, count in rows}
