"""What the HTTP API takes and returns (its OpenAPI schema is made from these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from indexer.protocol import MAX_QUERY_CHARS


class ErrorOut(BaseModel):
    error: str = Field(description="One readable line.")
    type: str = Field(description="The kind of error (LiveWitness exception class).")


class ProductIn(BaseModel):
    name: str = Field(min_length=1, max_length=256)
    aliases: list[str] = Field(default_factory=list, max_length=50)
    sku: str | None = Field(default=None, max_length=128)
    price: float | None = Field(default=None, ge=0)


class StreamStart(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Stream name.")
    source: str = Field(
        min_length=1, max_length=2048, description="Live URL (RTMP, HLS, FLV, SRT, room page)."
    )
    streamer: str | None = Field(default=None, max_length=128)
    language: str | None = Field(default=None, max_length=8)
    products: list[ProductIn] = Field(default_factory=list, max_length=500)


class StreamOut(BaseModel):
    name: str
    status: str = Field(
        description="idle, recording, stopped (by a person, a time limit or an error),"
        " ended (its source ended) or failed (storage failed under it, e.g. a full disk;"
        " last_error says why), as the recorder reports."
    )
    wanted: bool = Field(description="Whether a recorder has been asked to record it.")
    source: str | None
    streamer: str | None
    language: str | None
    segments: int
    recorded_seconds: float
    gaps: int
    transcription_backlog: int
    first_segment_at: str | None
    last_error: str | None
    recorded_by: str | None = Field(
        description="The recorder (host:pid:nonce) holding the stream while its lease runs."
    )


class ProductOut(ProductIn):
    pass


class HitOut(BaseModel):
    stream: str
    text: str
    highlighted: str = Field(description="The text, HTML-escaped, the match in <mark>.")
    match: Literal["exact", "sound-alike", "fuzzy", "inferred"]
    start: str = Field(description="ISO 8601 UTC.")
    offset: float = Field(description="Seconds from the stream's start.")
    end_offset: float
    score: float
    segment: int
    products: list[str]
    claims: list[str]
    banned: list[str]
    match_offset: float = Field(
        description="Where the matched words begin (seconds from the stream's start): the"
        " query's words, or the claim/product/banned mention browsed for."
    )
    match_end_offset: float = Field(description="Where the matched words end.")
    match_start: str = Field(description="match_offset as ISO 8601 UTC.")
    match_end: str = Field(description="match_end_offset as ISO 8601 UTC.")
    moment_url: str = Field(
        description="JSON: the moment of the matched words, with its transcript."
    )
    clip_url: str = Field(description="MP4 from a few seconds before to after the matched words.")
    kind: Literal["speech", "chat", "screen", "card"] = Field(
        default="speech",
        description="Said (speech), written in the chat, read on screen, or a product card.",
    )


class SearchOut(BaseModel):
    query: str = Field(max_length=MAX_QUERY_CHARS)
    total: int
    total_relation: Literal["eq", "gte"]
    page: int
    size: int
    hits: list[HitOut]


class WordOut(BaseModel):
    text: str
    offset: float
    end_offset: float


class UtteranceOut(BaseModel):
    text: str
    start: str
    offset: float
    end_offset: float
    words: list[WordOut]


class MomentOut(BaseModel):
    stream: str
    offset: float
    at: str
    clip_url: str
    playlist_url: str
    transcript: list[UtteranceOut]


class ExportIn(BaseModel):
    stream: str = Field(min_length=1, max_length=64)
    since: str = Field(description="ISO 8601.", max_length=64)
    until: str = Field(description="ISO 8601.", max_length=64)


class BannedHitOut(BaseModel):
    stream: str
    kind: Literal["speech", "chat", "screen"] = Field(
        default="speech", description="Said, written in the chat, or shown on screen."
    )
    term: str
    category: str
    severity: str
    source: str
    heard: str
    match: str
    at: str
    offset: float
    end_offset: float
    text: str
    words: list[Any]
    lexicon_version: str
    link: str


class CategorySeverityCount(BaseModel):
    category: str
    severity: str
    count: int


class ReportOut(BaseModel):
    stream: str | None
    streamer: str | None
    streams: list[str]
    since: str | None
    until: str | None
    generated_at: str
    lexicon_version: str
    total: int
    by_category: dict[str, int]
    by_kind: dict[str, int] = Field(default_factory=dict, description="speech, chat, screen.")
    by_severity: dict[str, int]
    by_category_and_severity: list[CategorySeverityCount]
    hits: list[BannedHitOut]


class TermCount(BaseModel):
    term: str
    category: str
    severity: str
    count: int


class OverviewRow(BaseModel):
    """One stream's (``stream`` set) or one streamer's (``streams`` set) hits in the range."""

    stream: str | None = None
    streamer: str | None
    streams: list[str] | None = None
    total: int
    by_category: dict[str, int]
    series: dict[str, list[int]] = Field(
        description="Hits per category per bucket, aligned with the overview's buckets."
    )
    top_terms: list[TermCount]
    recorded_seconds: float
    hits_per_hour: float | None = Field(description="Hits per hour on air (recorded).")
    claims: dict[str, int] = Field(description="Utterances holding each claim type.")
    claims_total: int


class ClaimTypeOut(BaseModel):
    name: str
    label: str


class OverviewOut(BaseModel):
    since: str
    until: str
    bucket: str
    bucket_seconds: int
    buckets: list[str] = Field(description="Each bucket's start (ISO 8601).")
    generated_at: str
    lexicon_version: str
    categories: list[str]
    total: int
    by_category: dict[str, int]
    top_terms: list[TermCount]
    claim_types: list[ClaimTypeOut]
    claims: dict[str, int]
    claims_at_least: bool = Field(description="Claim counts are lower bounds (capped).")
    streamers: list[OverviewRow]
    streams: list[OverviewRow]


class LexiconCategoryOut(BaseModel):
    category: str
    terms: int


class LexiconOut(BaseModel):
    version: str
    terms: int
    categories: list[LexiconCategoryOut]


class WebhookIn(BaseModel):
    url: str = Field(min_length=8, max_length=2048, pattern=r"^https?://")
    secret: str | None = Field(default=None, min_length=16, max_length=128)


class WebhookOut(BaseModel):
    id: int
    url: str
    active: bool
    created_at: str


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Shown once: signs each body (HMAC-SHA256).")


class DeliveryOut(BaseModel):
    """One event to one webhook: an alert, a signed head's receipt or a time-stamp."""

    delivery: int
    webhook: int
    event: str = Field(description="banned_word, chain.head, audit.head or timestamp.")
    subject: str = Field(description="The stream's name, or audit for the audit log.")
    summary: str = Field(description="The term alerted, or the head (and the TSA).")
    term: str | None = Field(description="The banned term (banned_word events only).")
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None
    log: list[dict[str, Any]]


class KeyIn(BaseModel):
    role: Literal["admin", "reviewer", "compliance", "case-system", "connector"]
    name: str = Field(min_length=1, max_length=128)


class KeyOut(BaseModel):
    id: int
    prefix: str
    role: str
    name: str
    created_at: str
    revoked_at: str | None


class KeyCreated(KeyOut):
    key: str = Field(description="Shown once; only its SHA-256 is stored.")


class AuditEventOut(BaseModel):
    seq: int
    at: str
    actor: str
    role: str
    action: str
    details: dict[str, Any]
    prev_sha256: str
    sha256: str
    v: int = Field(
        description="Format version of the hash: 2 is RFC 8785, 1 the legacy form"
        " (docs/formats.md)."
    )


class AuditCheckOut(BaseModel):
    events: int
    ok: bool
    first_bad_seq: int | None
    problem: str | None
    heads: int = Field(
        description="Signed audit heads checked (stored ones, and the receipts given)."
    )
    signed_seq: int | None = Field(description="The last event a checked signed head covers.")
    timestamps: int = Field(
        default=0, description="RFC 3161 time-stamp tokens over signed audit heads checked."
    )


class ReceiptsIn(BaseModel):
    """Webhook payloads a witness received; heads of other streams and other events are
    skipped, so a witness can send what it kept."""

    receipts: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=1000,
        description="chain.head (or, for the audit log, audit.head) payloads as received.",
    )


class VerifyOut(BaseModel):
    stream: str
    ok: bool
    entries: int
    segments: int
    gaps: int
    recorded_seconds: float
    gap_seconds: float
    signatures: int
    signed_head: int | None
    first_start: str | None
    last_end: str | None
    bytes_checked: int
    receipts: int = Field(description="Witnessed heads found in the chain.")
    timestamps: int = Field(default=0, description="RFC 3161 time-stamp tokens checked.")
    timestamps_referenced: int = Field(
        default=0, description="Of them, the tokens a later chain entry lists by SHA-256."
    )
    stamped_head: int | None = Field(
        default=None, description="The last chain head a time-stamping authority stamped."
    )
    stamped_at: str | None = Field(
        default=None, description="The earliest TSA time of that head (UTC, ISO 8601)."
    )
    event_batches: int = Field(default=0, description="Chained batches of stream events.")
    events: int = Field(default=0, description="Stream events in them, each re-read.")
    keyframes: int = Field(default=0, description="Chained keyframes (OCR), each re-read.")
    notes: list[str]


class StageOut(BaseModel):
    """A stage thread of the answering process (``livewitness serve`` runs them all)."""

    name: str
    alive: bool
    restarts: int = Field(description="Times it failed and was started again.")
    last_error: str | None
    last_error_at: str | None
    backlog: int | None = Field(description="Work waiting for it (transcription jobs).")


class HealthOut(BaseModel):
    """200 when every check passed, 503 (with this same body) when one did not."""

    status: Literal["ok", "down"]
    version: str
    problems: list[str] = Field(description="One line per failed check; empty when ok.")
    stages: list[StageOut] = Field(
        description="This process's stages; an API in a process of its own has none."
    )
    catalog_ok: bool = Field(description="The catalog answered a query.")
    search_index_ok: bool = Field(description="The search index answered a count.")
    transcription_backlog: int | None = Field(
        description="Transcription jobs queued or running (from the catalog: all hosts)."
    )
    free_disk_bytes: int | None = Field(description="Free space of the data directory's disk.")
    min_free_disk_bytes: int


class SigningKeyOut(BaseModel):
    """The installation's signing key, published so packages can be pinned to it."""

    key_id: str = Field(description="First 16 hex digits of the SHA-256 of the raw key.")
    algorithm: Literal["Ed25519"]
    public_key_pem: str = Field(description="The public key, PEM (SubjectPublicKeyInfo).")


class EventProblemOut(BaseModel):
    """An event that was not taken as new: its line (or array element) and why."""

    line: int = Field(description="1-based: the NDJSON line or JSON array element.")
    id: str | None = Field(description="The event's id, when it could be read.")
    status: Literal["duplicate", "refused"]
    reason: str | None = Field(
        description="Refused: malformed, too_large, invalid, unknown_kind, too_old, in_future,"
        " rate_limited or conflict (docs/events.md)."
    )
    error: str | None = Field(description="Refused: one line saying what is wrong.")


class EventsIngestOut(BaseModel):
    """What became of a batch of posted events (each event is taken or not on its own)."""

    accepted: int = Field(description="New events, stored (sealed into the chain shortly).")
    duplicate: int = Field(description="Events whose id was taken, with the same content.")
    refused: int
    problems: list[EventProblemOut] = Field(description="Every duplicate and refused line.")


class EventOut(BaseModel):
    """A stored stream event (docs/events.md): the connector's fields as received."""

    id: str
    kind: str
    at: str = Field(description="The platform's time, as the connector wrote it.")
    at_utc: str = Field(description="The same time in UTC (ISO 8601).")
    offset: float | None = Field(description="Seconds from the stream's first segment.")
    received_at: str
    late: bool = Field(description="Sealed into a batch after its time window was.")
    batch: int | None = Field(description="The chain entry of its batch (None: not yet).")
    text: str | None = None
    user: str | None = None
    action: str | None = None
    title: str | None = None
    price: float | None = None
    sku: str | None = None
    link: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)
    until: str | None = Field(default=None, description="A gap's end: the source was down.")


class ScreenTextOut(BaseModel):
    """A line of on-screen text (OCR), from the first to the last sampled frame it was
    seen in (docs/ocr.md)."""

    text: str = Field(description="As read.")
    search: str = Field(description="As search matches it (width, script, numerals folded).")
    box: list[list[float]] = Field(description="Four corners in frame pixels, first seen.")
    confidence: float
    first_seen: str = Field(description="UTC, ISO 8601.")
    last_seen: str
    first_offset: float = Field(description="Seconds from the stream's start.")
    last_offset: float
    segments: list[int]
    keyframe_url: str = Field(description="The chained JPEG of the moment it was first seen.")
