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
    status: str = Field(description="idle, recording or stopped (as the recorder reports).")
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
    match: Literal["exact", "sound-alike"]
    start: str = Field(description="ISO 8601 UTC.")
    offset: float = Field(description="Seconds from the stream's start.")
    end_offset: float
    score: float
    segment: int
    products: list[str]
    claims: list[str]
    banned: list[str]
    moment_url: str = Field(description="JSON: this moment with its transcript and clip link.")
    clip_url: str = Field(description="MP4 from a few seconds before to after the hit.")


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
    by_severity: dict[str, int]
    by_category_and_severity: list[CategorySeverityCount]
    hits: list[BannedHitOut]


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
    delivery: int
    webhook: int
    event: str
    term: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None
    log: list[dict[str, Any]]


class KeyIn(BaseModel):
    role: Literal["admin", "reviewer", "compliance", "case-system"]
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


class AuditCheckOut(BaseModel):
    events: int
    ok: bool
    first_bad_seq: int | None
    problem: str | None


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
