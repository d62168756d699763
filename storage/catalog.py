"""The catalog: streams, manifest index, segments, signatures and jobs (SQLAlchemy 2).

SQLite in the data directory by default, PostgreSQL by URL. The schema is brought up to
date with Alembic every time a catalog is opened.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, and_, create_engine, event, func, or_, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import NotFoundError, StorageError
from core.timeutil import iso, utc_now
from storage.models import (
    Alert,
    AlertDelivery,
    ApiKey,
    AuditEvent,
    BannedHit,
    Job,
    ManifestEntry,
    Product,
    Segment,
    Signature,
    Stream,
    Transcript,
    Webhook,
)

MIGRATIONS = Path(__file__).parent / "migrations"
WAITING = ("queued", "running")  # a job counted in a backlog


@dataclass(frozen=True)
class StreamSummary:
    """A stream's recording at a glance, from aggregates rather than its rows."""

    segments: int = 0
    seconds: float = 0.0
    first_segment_at: datetime | None = None
    gaps: int = 0
    backlog: int = 0  # transcription jobs queued or running


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def migrate(engine: Engine) -> None:
    upgrade(engine, "head")


def upgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


JOBS_QUEUED = "jobs"
TRANSCRIPTS_STORED = "transcripts"
ALERTS_RAISED = "alerts"


class Changes:
    """Wake-ups between stages of one process (``serve``): a stage waiting for new jobs,
    transcripts or alerts hears of them as they commit instead of at its next poll.
    Stages in other processes still find them by polling the catalog."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._counts: dict[str, int] = {}

    def count(self, topic: str) -> int:
        with self._changed:
            return self._counts.get(topic, 0)

    def mark(self, topic: str) -> None:
        with self._changed:
            self._counts[topic] = self._counts.get(topic, 0) + 1
            self._changed.notify_all()

    def wait(self, topic: str, seen: int, timeout: float) -> int:
        """Wait until ``topic`` changed since its count was ``seen``, at most ``timeout``
        seconds; returns the count now (read ``count`` before looking at the catalog, so
        a change in between wakes the wait at once)."""
        with self._changed:
            self._changed.wait_for(lambda: self._counts.get(topic, 0) != seen, timeout)
            return self._counts.get(topic, 0)


class Catalog:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            migrate(self.engine)
        except OperationalError as exc:
            raise StorageError(f"cannot open the catalog: {exc.orig}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.changes = Changes()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    # Streams
    def ensure_stream(self, name: str, source: str | None = None) -> Stream:
        with self.session() as s:
            stream = s.scalar(select(Stream).where(Stream.name == name))
            if stream is None:
                stream = Stream(name=name, source=source)
                s.add(stream)
            elif source:
                stream.source = source
            s.flush()
            return stream

    def get_stream(self, name: str) -> Stream:
        with self.session() as s:
            stream = s.scalar(select(Stream).where(Stream.name == name))
        if stream is None:
            raise NotFoundError(f"no stream named {name!r}")
        return stream

    def stream_by_id(self, stream_id: int) -> Stream:
        with self.session() as s:
            stream = s.get(Stream, stream_id)
        if stream is None:
            raise NotFoundError(f"no stream with id {stream_id}")
        return stream

    def list_streams(self) -> Sequence[Stream]:
        with self.session() as s:
            return s.scalars(select(Stream).order_by(Stream.name)).all()

    def set_status(self, stream_id: int, status: str) -> None:
        with self.session() as s:
            stream = s.get(Stream, stream_id)
            if stream is not None:
                stream.status = status

    # Manifest and segments
    def entries(self, stream_id: int) -> Sequence[ManifestEntry]:
        with self.session() as s:
            return s.scalars(
                select(ManifestEntry)
                .where(ManifestEntry.stream_id == stream_id)
                .order_by(ManifestEntry.idx)
            ).all()

    def head(self, stream_id: int) -> ManifestEntry | None:
        with self.session() as s:
            return s.scalar(
                select(ManifestEntry)
                .where(ManifestEntry.stream_id == stream_id)
                .order_by(ManifestEntry.idx.desc())
                .limit(1)
            )

    def add_entry(self, entry: ManifestEntry) -> None:
        """Idempotent: an entry already indexed at the same place is left as it is."""
        with self.session() as s:
            found = s.scalar(
                select(ManifestEntry).where(
                    ManifestEntry.stream_id == entry.stream_id, ManifestEntry.idx == entry.idx
                )
            )
            if found is None:
                s.add(entry)
            elif found.sha256 != entry.sha256:
                raise StorageError(f"catalog already indexes another entry at {entry.blob_key}")

    def segments(self, stream_id: int) -> Sequence[Segment]:
        with self.session() as s:
            return s.scalars(
                select(Segment).where(Segment.stream_id == stream_id).order_by(Segment.seq)
            ).all()

    def segment_by_capture(self, stream_id: int, capture: str) -> Segment | None:
        with self.session() as s:
            return s.scalar(
                select(Segment).where(Segment.stream_id == stream_id, Segment.capture == capture)
            )

    def last_segment(self, stream_id: int) -> Segment | None:
        with self.session() as s:
            return s.scalar(
                select(Segment)
                .where(Segment.stream_id == stream_id)
                .order_by(Segment.seq.desc())
                .limit(1)
            )

    def segment(self, stream_id: int, seq: int) -> Segment | None:
        with self.session() as s:
            return s.scalar(
                select(Segment).where(Segment.stream_id == stream_id, Segment.seq == seq)
            )

    def first_segment(self, stream_id: int) -> Segment | None:
        with self.session() as s:
            return s.scalar(
                select(Segment).where(Segment.stream_id == stream_id).order_by(Segment.seq).limit(1)
            )

    def add_segment(self, segment: Segment) -> None:
        with self.session() as s:
            found = s.scalar(
                select(Segment).where(
                    Segment.stream_id == segment.stream_id, Segment.seq == segment.seq
                )
            )
            if found is None:
                s.add(segment)

    # Signatures
    def signatures(self, stream_id: int) -> Sequence[Signature]:
        with self.session() as s:
            return s.scalars(
                select(Signature)
                .where(Signature.stream_id == stream_id)
                .order_by(Signature.head_idx)
            ).all()

    def last_signature(self) -> Signature | None:
        """The most recently stored signature of any stream."""
        with self.session() as s:
            return s.scalar(select(Signature).order_by(Signature.id.desc()).limit(1))

    def add_signature(self, signature: Signature) -> None:
        with self.session() as s:
            found = s.scalar(
                select(Signature).where(
                    Signature.stream_id == signature.stream_id,
                    Signature.head_idx == signature.head_idx,
                )
            )
            if found is None:
                s.add(signature)

    # Transcripts and products
    def add_transcript(self, transcript: Transcript) -> None:
        with self.session() as s:
            found = s.scalar(
                select(Transcript).where(
                    Transcript.stream_id == transcript.stream_id,
                    Transcript.segment_seq == transcript.segment_seq,
                )
            )
            if found is None:
                s.add(transcript)
        self.changes.mark(TRANSCRIPTS_STORED)

    def transcripts(
        self, stream_id: int, seqs: Collection[int] | None = None
    ) -> Sequence[Transcript]:
        """A stream's transcripts in segment order (only those of ``seqs`` if given)."""
        with self.session() as s:
            query = select(Transcript).where(Transcript.stream_id == stream_id)
            if seqs is not None:
                query = query.where(Transcript.segment_seq.in_(list(seqs)))
            return s.scalars(query.order_by(Transcript.segment_seq)).all()

    def transcript_keys(self, after_id: int = 0) -> Sequence[tuple[int, int, int]]:
        """(id, stream id, segment seq) of the transcripts stored after ``after_id``:
        transcripts are write-once, so a follower keeps the last id as its cursor."""
        with self.session() as s:
            rows = s.execute(
                select(Transcript.id, Transcript.stream_id, Transcript.segment_seq)
                .where(Transcript.id > after_id)
                .order_by(Transcript.id)
            ).all()
            return [(int(a), int(b), int(c)) for a, b, c in rows]

    def products(self, stream_id: int) -> Sequence[Product]:
        with self.session() as s:
            return s.scalars(
                select(Product).where(Product.stream_id == stream_id).order_by(Product.name)
            ).all()

    def set_products(self, stream_id: int, products: Sequence[Product]) -> None:
        """Replace a stream's product list."""
        with self.session() as s:
            for old in s.scalars(select(Product).where(Product.stream_id == stream_id)):
                s.delete(old)
            s.flush()
            for product in products:
                product.stream_id = stream_id
                s.add(product)

    def describe(
        self, stream_id: int, *, language: str | None = None, streamer: str | None = None
    ) -> None:
        """Set a stream's spoken language and streamer (None leaves a field as it is)."""
        with self.session() as s:
            stream = s.get(Stream, stream_id)
            if stream is not None:
                stream.language = language or stream.language
                stream.streamer = streamer or stream.streamer

    # Jobs
    def enqueue(self, kind: str, stream_id: int, segment_seq: int) -> None:
        """Queue a job once; queuing it again is a no-op."""
        try:
            with self.session() as s:
                exists = s.scalar(
                    select(Job.id).where(
                        Job.kind == kind, Job.stream_id == stream_id, Job.segment_seq == segment_seq
                    )
                )
                if exists is None:
                    s.add(Job(kind=kind, stream_id=stream_id, segment_seq=segment_seq))
        except SAIntegrityError:
            pass  # queued concurrently by another process
        self.changes.mark(JOBS_QUEUED)

    def claim_job(self, kind: str, worker: str, lease_seconds: float) -> Job | None:
        """Take the oldest queued job, or one whose worker's lease ran out; None if none.

        One statement does the choosing and the taking, so two workers never get the same
        job: PostgreSQL skips rows another worker has locked; SQLite runs the UPDATE under
        its single write lock.
        """
        now = utc_now()
        claimable = and_(
            Job.kind == kind,
            or_(Job.status == "queued", and_(Job.status == "running", Job.lease_until < now)),
        )
        oldest = select(Job.id).where(claimable).order_by(Job.id).limit(1)
        if self.engine.dialect.name == "postgresql":
            oldest = oldest.with_for_update(skip_locked=True)
        take = (
            update(Job)
            .where(Job.id == oldest.scalar_subquery(), claimable)
            .values(
                status="running",
                worker=worker,
                lease_until=now + timedelta(seconds=lease_seconds),
                attempts=Job.attempts + 1,
                started_at=now,
                updated_at=now,
            )
            .returning(Job.id)
        )
        with self.session() as s:
            job_id = s.scalar(take)
            return None if job_id is None else s.get(Job, job_id)

    def renew_lease(self, job_id: int, worker: str, lease_seconds: float) -> bool:
        with self.session() as s:
            result = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.worker == worker, Job.status == "running")
                .values(lease_until=utc_now() + timedelta(seconds=lease_seconds))
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def finish_job(
        self,
        job_id: int,
        worker: str,
        *,
        error: str | None = None,
        audio_seconds: float | None = None,
        rtf: float | None = None,
        max_attempts: int = 3,
    ) -> None:
        """Mark a job done, or failed; a failed job is queued again until max_attempts."""
        with self.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.worker != worker:
                return  # our lease ran out and another worker owns it now
            job.finished_at = utc_now()
            job.lease_until = None
            job.error = error
            if error is None:
                job.status = "done"
                job.audio_seconds = audio_seconds
                job.rtf = rtf
            else:
                job.status = "failed" if job.attempts >= max_attempts else "queued"

    def jobs(self, stream_id: int, kind: str | None = None) -> Sequence[Job]:
        with self.session() as s:
            query = select(Job).where(Job.stream_id == stream_id).order_by(Job.segment_seq)
            if kind:
                query = query.where(Job.kind == kind)
            return s.scalars(query).all()

    def backlog(self, kind: str) -> int:
        with self.session() as s:
            return int(
                s.scalar(
                    select(func.count(Job.id)).where(Job.kind == kind, Job.status.in_(WAITING))
                )
                or 0
            )

    # Streams to record (the API asks, recorder stages obey)
    def want_recording(
        self,
        stream_id: int,
        wanted: bool,
        source: str | None = None,
        error: str | None = None,
    ) -> None:
        with self.session() as s:
            stream = s.get(Stream, stream_id)
            if stream is None:
                raise NotFoundError(f"no stream with id {stream_id}")
            stream.wanted = wanted
            stream.source = source or stream.source
            stream.last_error = error

    def hold_recording(
        self, stream_id: int, recorder: str, lease_seconds: float, replacing: str | None = None
    ) -> bool:
        """Take or renew a stream's recording lease. Granted when no recorder holds it,
        ``recorder`` already does, the holder's lease ran out, or the holder is
        ``replacing`` (a recorder known to be dead). One conditional UPDATE, so two
        recorders asking at once never both get it."""
        now = utc_now()
        free = [
            Stream.recorder.is_(None),
            Stream.recorder == recorder,
            Stream.recorder_lease_until < now,
        ]
        if replacing is not None:
            free.append(Stream.recorder == replacing)
        with self.session() as s:
            result = s.execute(
                update(Stream)
                .where(Stream.id == stream_id, or_(*free))
                .values(
                    recorder=recorder,
                    recorder_lease_until=now + timedelta(seconds=lease_seconds),
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def release_recording(self, stream_id: int, recorder: str) -> None:
        with self.session() as s:
            s.execute(
                update(Stream)
                .where(Stream.id == stream_id, Stream.recorder == recorder)
                .values(recorder=None, recorder_lease_until=None)
            )

    def note_recording_error(self, stream_id: int, error: str | None) -> None:
        with self.session() as s:
            stream = s.get(Stream, stream_id)
            if stream is not None:
                stream.last_error = error

    # API keys and the audit log
    def add_api_key(self, key: ApiKey) -> ApiKey:
        with self.session() as s:
            s.add(key)
            s.flush()
            s.refresh(key)
            return key

    def api_key_by_hash(self, sha256: str) -> ApiKey | None:
        with self.session() as s:
            return s.scalar(select(ApiKey).where(ApiKey.sha256 == sha256))

    def api_keys(self) -> Sequence[ApiKey]:
        with self.session() as s:
            return s.scalars(select(ApiKey).order_by(ApiKey.id)).all()

    def revoke_api_key(self, key_id: int) -> ApiKey:
        with self.session() as s:
            key = s.get(ApiKey, key_id)
            if key is None:
                raise NotFoundError(f"no API key {key_id}")
            key.revoked_at = key.revoked_at or utc_now()
            return key

    def append_audit(self, make: Callable[[AuditEvent | None], AuditEvent]) -> AuditEvent:
        """Append ``make(previous event)`` as the next link; retried when another writer
        took the same sequence number (the unique seq keeps the chain a line)."""
        for _ in range(20):
            try:
                with self.session() as s:
                    last = s.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
                    event = make(last)
                    s.add(event)
                    s.flush()
                    return event
            except SAIntegrityError:
                continue
        raise StorageError("the audit log is too busy to append to")

    def audit_events(self, after_seq: int = 0, limit: int | None = None) -> Sequence[AuditEvent]:
        with self.session() as s:
            query = select(AuditEvent).where(AuditEvent.seq > after_seq).order_by(AuditEvent.seq)
            if limit is not None:
                query = query.limit(limit)
            return s.scalars(query).all()

    # Compliance: banned-word hits, webhooks, alerts
    def replace_banned_hits(
        self, stream_id: int, segment_seq: int, hits: Sequence[BannedHit]
    ) -> None:
        """Make ``hits`` a segment's banned-word hits (they are derived, so replaceable)."""
        with self.session() as s:
            for old in s.scalars(
                select(BannedHit).where(
                    BannedHit.stream_id == stream_id, BannedHit.segment_seq == segment_seq
                )
            ):
                s.delete(old)
            s.flush()
            for hit in hits:
                hit.stream_id, hit.segment_seq = stream_id, segment_seq
                s.add(hit)

    def banned_hits(
        self,
        stream_ids: Sequence[int] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Sequence[BannedHit]:
        with self.session() as s:
            query = select(BannedHit).order_by(BannedHit.at, BannedHit.id)
            if stream_ids is not None:
                query = query.where(BannedHit.stream_id.in_(stream_ids))
            if since is not None:
                query = query.where(BannedHit.at >= since)
            if until is not None:
                query = query.where(BannedHit.at <= until)
            return s.scalars(query).all()

    def add_webhook(self, url: str, secret: str) -> Webhook:
        with self.session() as s:
            webhook = Webhook(url=url, secret=secret, active=True)
            s.add(webhook)
            s.flush()
            s.refresh(webhook)
            return webhook

    def webhooks(self, active_only: bool = False) -> Sequence[Webhook]:
        with self.session() as s:
            query = select(Webhook).order_by(Webhook.id)
            if active_only:
                query = query.where(Webhook.active.is_(True))
            return s.scalars(query).all()

    def deactivate_webhook(self, webhook_id: int) -> None:
        with self.session() as s:
            webhook = s.get(Webhook, webhook_id)
            if webhook is None:
                raise NotFoundError(f"no webhook {webhook_id}")
            webhook.active = False

    def alerted_near(
        self, stream_id: int, kind: str, term: str, offset: float, within: float
    ) -> bool:
        """Whether this term was already alerted on this stream within ``within`` seconds
        (a segment's last words are decoded twice: once alone, once with the next one)."""
        with self.session() as s:
            found = s.scalar(
                select(func.count(Alert.id)).where(
                    Alert.stream_id == stream_id,
                    Alert.kind == kind,
                    Alert.term == term,
                    Alert.offset >= offset - within,
                    Alert.offset <= offset + within,
                )
            )
            return bool(found)

    def add_alert(self, alert: Alert) -> int:
        """Store an alert and queue one delivery per active webhook; returns its id."""
        with self.session() as s:
            s.add(alert)
            s.flush()
            for webhook in s.scalars(select(Webhook).where(Webhook.active.is_(True))):
                s.add(AlertDelivery(alert_id=alert.id, webhook_id=webhook.id))
            alert_id = alert.id
        self.changes.mark(ALERTS_RAISED)
        return alert_id

    def due_deliveries(
        self, now: datetime, limit: int = 50
    ) -> Sequence[tuple[AlertDelivery, Alert, Webhook]]:
        with self.session() as s:
            rows = s.execute(
                select(AlertDelivery, Alert, Webhook)
                .join(Alert, Alert.id == AlertDelivery.alert_id)
                .join(Webhook, Webhook.id == AlertDelivery.webhook_id)
                .where(AlertDelivery.status == "pending", AlertDelivery.next_attempt_at <= now)
                .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id)
                .limit(limit)
            ).all()
            return [(d, a, w) for d, a, w in rows]

    def record_attempt(
        self,
        delivery_id: int,
        *,
        delivered: bool,
        status: int | None,
        error: str | None,
        next_attempt_at: datetime | None,
        elapsed_ms: float,
    ) -> None:
        """Log one attempt; ``next_attempt_at`` None with no delivery means give up."""
        now = utc_now()
        with self.session() as s:
            delivery = s.get(AlertDelivery, delivery_id)
            if delivery is None:
                raise NotFoundError(f"no alert delivery {delivery_id}")
            log = json.loads(delivery.log)
            entry = {"at": iso(now), "status": status, "error": error, "ms": round(elapsed_ms, 1)}
            delivery.log = json.dumps([*log, entry])
            delivery.attempts += 1
            delivery.last_status, delivery.last_error = status, error
            if delivered:
                delivery.status, delivery.delivered_at = "delivered", now
            elif next_attempt_at is None:
                delivery.status = "failed"
            else:
                delivery.next_attempt_at = next_attempt_at

    def deliveries(self, webhook_id: int | None = None) -> Sequence[tuple[AlertDelivery, Alert]]:
        with self.session() as s:
            query = (
                select(AlertDelivery, Alert)
                .join(Alert, Alert.id == AlertDelivery.alert_id)
                .order_by(AlertDelivery.id)
            )
            if webhook_id is not None:
                query = query.where(AlertDelivery.webhook_id == webhook_id)
            return [(d, a) for d, a in s.execute(query).all()]

    # Metrics: aggregates for storage.metrics, each one GROUP BY query that returns a few
    # numbers per stream, status or category, never the rows themselves.
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
        """Alert deliveries per status (pending, delivered, failed)."""
        with self.session() as s:
            rows = s.execute(
                select(AlertDelivery.status, func.count(AlertDelivery.id)).group_by(
                    AlertDelivery.status
                )
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
