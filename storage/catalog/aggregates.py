"""Aggregates for storage.metrics, the stream listings and the compliance overview:
counts, never rows."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, cast, func, select

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
        self, kind: str | tuple[str, ...], stream_ids: Collection[int] | None = None
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
            .where(Job.kind.in_(_kinds(kind)), Job.status.in_(WAITING))
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

    def job_status_counts(self, kind: str | tuple[str, ...]) -> dict[str, int]:
        """Jobs of a kind per status (queued, running, done, failed)."""
        with self.session() as s:
            rows = s.execute(
                select(Job.status, func.count(Job.id))
                .where(Job.kind.in_(_kinds(kind)))
                .group_by(Job.status)
            ).all()
        return {status: int(count) for status, count in rows}

    def recent_job_timings(
        self, kind: str | tuple[str, ...], limit: int
    ) -> list[tuple[float, float]]:
        """(audio seconds, processing seconds) of the last ``limit`` jobs done with audio.

        "Last" by job id, newest first: ids follow the recording, so these are the latest
        audio transcribed, and the primary key finds them without sorting the table.
        Audio seconds are what the job decoded (a segment's or a speech chunk's length, as
        the worker recorded it); early pieces dropped undecoded (0 s) are left out.
        Processing time is finished_at - started_at of the job's final (successful) claim.
        """
        with self.session() as s:
            rows = s.execute(
                select(Job.audio_seconds, Job.started_at, Job.finished_at)
                .where(
                    Job.kind.in_(_kinds(kind)),
                    Job.status == "done",
                    Job.audio_seconds > 0,
                    Job.started_at.is_not(None),
                    Job.finished_at.is_not(None),
                )
                .order_by(Job.id.desc())
                .limit(limit)
            ).all()
        return [
            (float(audio), (finished - started).total_seconds())
            for audio, started, finished in rows
            if audio is not None and started is not None and finished is not None
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

    # -- the compliance overview and the spike rule (compliance/overview.py, spikes.py) --
    def banned_hit_buckets(
        self,
        since: datetime,
        until: datetime,
        width_seconds: int,
        stream_ids: Collection[int] | None = None,
    ) -> list[tuple[int, str, int, int]]:
        """(stream id, category, bucket, hits) of banned-word hits said in [since,
        until), bucket ``n`` holding [since + n * width, since + (n + 1) * width)."""
        start = int(since.timestamp())
        if self.engine.dialect.name == "sqlite":
            # The column holds "YYYY-MM-DD HH:MM:SS.ffffff" in UTC; %s is its Unix time.
            epoch: Any = cast(func.strftime("%s", BannedHit.at), Integer)
            bucket: Any = (epoch - start) / width_seconds  # integer division, epoch >= start
        else:
            bucket = cast(
                func.floor((func.extract("epoch", BannedHit.at) - start) / width_seconds),
                Integer,
            )
        query = (
            select(BannedHit.stream_id, BannedHit.category, bucket, func.count(BannedHit.id))
            .where(BannedHit.at >= since, BannedHit.at < until)
            .group_by(BannedHit.stream_id, BannedHit.category, bucket)
        )
        if stream_ids is not None:
            query = query.where(BannedHit.stream_id.in_(list(stream_ids)))
        with self.session() as s:
            rows = s.execute(query).all()
        return [(int(sid), category, int(n), int(count)) for sid, category, n, count in rows]

    def banned_term_counts(
        self, since: datetime, until: datetime, stream_ids: Collection[int] | None = None
    ) -> list[tuple[int, str, str, str, int]]:
        """(stream id, term, category, severity, hits) said in [since, until)."""
        query = (
            select(
                BannedHit.stream_id,
                BannedHit.term,
                BannedHit.category,
                BannedHit.severity,
                func.count(BannedHit.id),
            )
            .where(BannedHit.at >= since, BannedHit.at < until)
            .group_by(BannedHit.stream_id, BannedHit.term, BannedHit.category, BannedHit.severity)
        )
        if stream_ids is not None:
            query = query.where(BannedHit.stream_id.in_(list(stream_ids)))
        with self.session() as s:
            rows = s.execute(query).all()
        return [(int(sid), term, cat, sev, int(n)) for sid, term, cat, sev, n in rows]

    def recorded_seconds(
        self, since: datetime, until: datetime, stream_ids: Collection[int] | None = None
    ) -> dict[int, float]:
        """Seconds of segments starting in [since, until) per stream id: the time a
        streamer was on air in a range (to a segment's length at its ends)."""
        query = (
            select(Segment.stream_id, func.coalesce(func.sum(Segment.duration), 0.0))
            .where(Segment.starts_at >= since, Segment.starts_at < until)
            .group_by(Segment.stream_id)
        )
        if stream_ids is not None:
            query = query.where(Segment.stream_id.in_(list(stream_ids)))
        with self.session() as s:
            rows = s.execute(query).all()
        return {int(sid): float(seconds) for sid, seconds in rows}


def _kinds(kind: str | tuple[str, ...]) -> tuple[str, ...]:
    """One job kind or several (transcription: speech chunks and whole segments)."""
    return (kind,) if isinstance(kind, str) else kind
