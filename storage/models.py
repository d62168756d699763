"""Catalog tables (SQLAlchemy 2). The schema changes only through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.timeutil import utc_now


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Stream(Base):
    __tablename__ = "streams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    source: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="idle")
    language: Mapped[str | None] = mapped_column(String(8))
    streamer: Mapped[str | None] = mapped_column(String(128))
    # Whether a recorder should be recording it (set by the API; recorder stages obey).
    wanted: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The recorder holding it (host:pid:nonce) and until when: recorder stages on several
    # machines share one catalog, and a crashed one's streams are taken over when it ends.
    recorder: Mapped[str | None] = mapped_column(String(160))
    recorder_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, onupdate=utc_now)


class ManifestEntry(Base):
    """One link of a stream's hash chain; the stored blob is the record, this is its index."""

    __tablename__ = "manifest_entries"
    __table_args__ = (UniqueConstraint("stream_id", "idx"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), index=True)
    idx: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # "segment" | "gap"
    blob_key: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    prev_sha256: Mapped[str] = mapped_column(String(64))
    segment_seq: Mapped[int | None] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = (
        UniqueConstraint("stream_id", "seq"),
        UniqueConstraint("stream_id", "capture"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    blob_key: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration: Mapped[float] = mapped_column(Float)
    entry_idx: Mapped[int] = mapped_column(Integer)
    recovered: Mapped[bool] = mapped_column(default=False)
    # Where the recorder captured it (session/file): identical bytes can recur in a stream
    # (a looped clip), so a repeated append is recognised by origin, not by content.
    capture: Mapped[str] = mapped_column(String(128))


class EventRow(Base):
    """A stream event as received (core/events.py): ``body`` is its line without the late
    mark; ``batch_idx`` the chain entry of the batch that holds it (None: not sealed yet,
    ``claim`` then names the sealer writing it)."""

    __tablename__ = "stream_events"
    __table_args__ = (UniqueConstraint("stream_id", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # the platform's time
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    body: Mapped[str] = mapped_column(Text)  # canonical JSON, as the connector's fields
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    batch_idx: Mapped[int | None] = mapped_column(Integer, index=True)
    claim: Mapped[str | None] = mapped_column(String(32), index=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EventBatch(Base):
    """A sealed batch of events: a JSONL blob entered in the chain (kind "events")."""

    __tablename__ = "event_batches"
    __table_args__ = (UniqueConstraint("stream_id", "entry_idx"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), index=True)
    entry_idx: Mapped[int] = mapped_column(Integer)
    batch: Mapped[str] = mapped_column(String(32), index=True)  # the sealer's claim
    blob_key: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer)
    late: Mapped[int] = mapped_column(Integer)  # how many of them are late
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)  # sealed up to here


class EventRefusal(Base):
    """How many events of a stream were refused, by reason (core/events.py)."""

    __tablename__ = "event_refusals"
    __table_args__ = (UniqueConstraint("stream_id", "reason"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), index=True)
    reason: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(Integer, default=0)


class Signature(Base):
    __tablename__ = "signatures"
    __table_args__ = (UniqueConstraint("stream_id", "head_idx"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), index=True)
    head_idx: Mapped[int] = mapped_column(Integer)
    head_sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(512))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TimestampToken(Base):
    """An RFC 3161 token from a TSA over a signed head's exact signed bytes; the stored
    blob (the TSA's response as received) is the record, this its index."""

    __tablename__ = "timestamp_tokens"
    __table_args__ = (UniqueConstraint("stream_id", "head_idx", "tsa_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Whose head: "chain" (a stream's, ``stream_id`` set) or "audit" (the audit log's).
    log: Mapped[str] = mapped_column(String(8), default="chain")
    stream_id: Mapped[int | None] = mapped_column(ForeignKey("streams.id"), index=True)
    head_idx: Mapped[int] = mapped_column(Integer)  # chain entry index, or audit seq
    tsa_id: Mapped[str] = mapped_column(String(16))  # storage.timestamping.tsa_id(tsa_url)
    tsa_url: Mapped[str] = mapped_column(Text)
    blob_key: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))  # of the stored token
    imprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the stamped bytes
    gen_time: Mapped[datetime] = mapped_column(UTCDateTime)  # the TSA's time
    serial: Mapped[str] = mapped_column(String(64))  # the TSA's serial number (decimal)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    # The chain entry that lists this token (a stream's next entry after it arrived);
    # None until then, and always for the audit log's tokens.
    referenced_idx: Mapped[int | None] = mapped_column(Integer)


class Job(Base):
    """Work queued for a later stage; workers claim jobs with a lease."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("kind", "stream_id", "segment_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), index=True)
    segment_seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    audio_seconds: Mapped[float | None] = mapped_column(Float)
    rtf: Mapped[float | None] = mapped_column(Float)  # audio seconds per wall second
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, onupdate=utc_now)


class SpeechChunk(Base):
    """Speech the recorder cut at pauses from its 16 kHz PCM tap (recorder/speech.py):
    derived audio (a WAV blob, not evidence) that a transcription job turns into words."""

    __tablename__ = "speech_chunks"
    __table_args__ = (UniqueConstraint("stream_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    # The evidence segment being recorded when the chunk began: its transcript is filed
    # there, as a part (Transcript.part).
    segment_seq: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    offset: Mapped[float] = mapped_column(Float)  # seconds from the stream's start
    duration: Mapped[float] = mapped_column(Float)
    blob_key: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    # A clause of a chunk still open (the fast pass): its words are provisional, replaced
    # by the chunk's own transcript (core.transcript).
    provisional: Mapped[bool] = mapped_column(Boolean, default=False)


class Transcript(Base):
    """A segment's words; the JSON blob beside the segment is the record, this its copy.

    ``part`` 0 is the segment decoded whole; parts 1, 2, ... are the speech chunks that
    began in it (chunk seq + 1), each a transcript of its own words."""

    __tablename__ = "transcripts"
    __table_args__ = (UniqueConstraint("stream_id", "segment_seq", "part"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), index=True)
    segment_seq: Mapped[int] = mapped_column(Integer)
    part: Mapped[int] = mapped_column(Integer, default=0)
    blob_key: Mapped[str] = mapped_column(String(512))
    language: Mapped[str | None] = mapped_column(String(8))
    model: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)  # the stored JSON document
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Keyframe(Base):
    """A JPEG of a sampled moment with on-screen text, stored and chained: a ``keyframes``
    manifest entry lists it by SHA-256 (storage/chain.py). The blob is the record."""

    __tablename__ = "keyframes"
    __table_args__ = (UniqueConstraint("stream_id", "blob_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), index=True)
    segment_seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    offset: Mapped[float] = mapped_column(Float)  # seconds from the stream's start
    blob_key: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    entry_idx: Mapped[int] = mapped_column(Integer)  # the chain entry that lists it


class ScreenText(Base):
    """A line of on-screen text read in one segment's sampled frames, from the first to
    the last consecutive frame it was seen in. Derived from the keyframes; rebuilt by
    OCR-ing the segment again."""

    __tablename__ = "screen_text"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), index=True)
    segment_seq: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    search: Mapped[str] = mapped_column(Text)  # core.text.search_form(text)
    box: Mapped[str] = mapped_column(Text)  # JSON [[x, y] x 4] in the frame, first seen
    confidence: Mapped[float] = mapped_column(Float)  # the best of its frames
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_offset: Mapped[float] = mapped_column(Float)
    last_offset: Mapped[float] = mapped_column(Float)
    # Seen in the segment's first / last sampled frame: a line continues into the
    # neighbouring segment's record when both ends are open (merged when read).
    open_start: Mapped[bool] = mapped_column(Boolean, default=False)
    open_end: Mapped[bool] = mapped_column(Boolean, default=False)
    keyframe_key: Mapped[str] = mapped_column(String(512))  # where it was first seen


class Product(Base):
    """A product a stream sells (e.g. from the live room's shopping cart)."""

    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("stream_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), index=True)
    name: Mapped[str] = mapped_column(String(256))
    aliases: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    sku: Mapped[str | None] = mapped_column(String(128))
    price: Mapped[float | None] = mapped_column(Float)


class BannedHit(Base):
    """A banned advertising term heard in an utterance. Derived from the stored transcript
    and the lexicon of the time (``lexicon_version``); rebuilt by ``compliance rescan``."""

    __tablename__ = "banned_hits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), index=True)
    segment_seq: Mapped[int] = mapped_column(Integer)
    utterance_id: Mapped[str] = mapped_column(String(64))
    term: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(32), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(Text)
    heard: Mapped[str] = mapped_column(String(128))
    match: Mapped[str] = mapped_column(String(16))  # "exact" | "sound-alike"
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # when it was said
    offset: Mapped[float] = mapped_column(Float)  # seconds from the stream's start
    end_offset: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)  # the utterance
    words: Mapped[str] = mapped_column(Text, default="[]")  # JSON: the words heard, timed
    lexicon_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Webhook(Base):
    """Where alerts are posted; the secret signs each body (HMAC-SHA256)."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Alert(Base):
    """An event worth telling the webhooks about: a banned word on a live stream, or a
    streamer's banned-word rate spiking (``term``: the streamer; compliance/spikes.py)."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # "banned_word" | "compliance.spike"
    term: Mapped[str] = mapped_column(String(128))
    offset: Mapped[float] = mapped_column(Float)
    payload: Mapped[str] = mapped_column(Text)  # the JSON body sent
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class WebhookDelivery(Base):
    """One event to one webhook (the outbox): the body as posted, every attempt in
    ``log`` (the delivery log). Alerts, receipts and time-stamp receipts alike."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id"), index=True)
    event: Mapped[str] = mapped_column(String(32))  # the body's "event"
    subject: Mapped[str] = mapped_column(String(128))  # a stream's name, or "audit"
    summary: Mapped[str] = mapped_column(Text)  # what the log shows: a term, a head
    body: Mapped[str] = mapped_column(Text)  # the JSON body, exactly as posted
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    log: Mapped[str] = mapped_column(Text, default="[]")  # JSON: [{at, status, error, ms}]
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class ApiKey(Base):
    """An API key: only its SHA-256 is stored (keys are 256-bit random, so a fast hash
    is enough; a slow password hash protects guessable secrets, which these are not)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)  # shown in lists and logs
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """Who did what with the evidence, when: hash-chained like the manifests."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(160))  # "key 3 (anna, reviewer)"
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_sha256: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    # Which canonical JSON the hash covers (docs/formats.md); NULL: version 1, written
    # before the column existed.
    format_version: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Receipt(Base):
    """A signed head (a stream's chain head, the audit log's head) queued for the webhooks,
    so that witnesses outside the installation hold it (``storage/receipts.py``)."""

    __tablename__ = "receipts"
    __table_args__ = (UniqueConstraint("event", "subject", "head_idx"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[str] = mapped_column(String(32))  # "chain.head" | "audit.head"
    subject: Mapped[str] = mapped_column(String(128))  # the stream's name, or "audit"
    head_idx: Mapped[int] = mapped_column(Integer)  # chain entry index, or audit seq
    head_sha256: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)  # the JSON body sent
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Case(Base):
    """A dispute case: the moments a reviewer keeps, with their signed overlays."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)  # case system's
    title: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)  # or "closed"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    created_by: Mapped[str] = mapped_column(String(160))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    updated_by: Mapped[str] = mapped_column(String(160))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CaseMoment(Base):
    """A time range of a stream kept in a case, and what found it."""

    __tablename__ = "case_moments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id"), index=True)
    start_offset: Mapped[float] = mapped_column(Float)  # seconds from the stream's start
    end_offset: Mapped[float] = mapped_column(Float)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    found_by: Mapped[str] = mapped_column(Text)  # 'search "包邮"', 'banned 最低价'
    matched: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of matched words
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    created_by: Mapped[str] = mapped_column(String(160))


class CaseOverlay(Base):
    """A note, tag or transcript correction on a moment: never evidence. The signed record
    (``blob_key``, under ``overlays/``) is the overlay; this row is its index."""

    __tablename__ = "case_overlays"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    moment_id: Mapped[int] = mapped_column(ForeignKey("case_moments.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "note" | "tag" | "correction"
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    blob_key: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))  # of the stored signed record


class BlobHold(Base):
    """A legal hold a case places on one stored blob; the blob is held while any row for
    its key is unreleased. ``applied_at``: when the blob store confirmed it (None: still
    to be placed, retried by the periodic hold task)."""

    __tablename__ = "blob_holds"
    __table_args__ = (UniqueConstraint("case_id", "blob_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    blob_key: Mapped[str] = mapped_column(String(512), index=True)
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
