"""The SearchIndex Protocol: utterance documents in, ranked hits out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # the search side needs no document code (nor what it imports)
    from indexer.documents import UtteranceDoc

MAX_QUERY_CHARS = 200
MAX_PAGE_SIZE = 100
# Pages end within the first MAX_RESULT_WINDOW hits, and totals are counted up to
# TOTAL_CAP (then reported as a lower bound), as Elasticsearch does by default: a reviewer
# narrows a query with filters or a time range rather than paging through 100,000 hits.
MAX_RESULT_WINDOW = 1000
TOTAL_CAP = 10_000
# What a document is: said (a transcript's utterance), written in the chat, read on
# screen (OCR), or a product card's state (stream events). One index holds them all.
DOC_KINDS = ("speech", "chat", "screen", "card")
DocKind = Literal["speech", "chat", "screen", "card"]


@dataclass(frozen=True)
class SearchQuery:
    text: str
    stream: str | None = None
    streamer: str | None = None
    product: str | None = None
    claim: str | None = None
    banned: str | None = None  # a banned-word category of the lexicon
    since: datetime | None = None
    until: datetime | None = None
    sort: Literal["relevance", "time"] = "relevance"
    page: int = 1
    size: int = 20
    sound_alike: bool = True
    kind: DocKind | None = None  # only documents of this kind (DOC_KINDS)


@dataclass(frozen=True)
class Hit:
    id: str
    stream: str
    text: str
    highlighted: str  # the text with the match inside <mark>…</mark>
    # "inferred": browsing a product, found only as the product a claim is about
    match: Literal["exact", "sound-alike", "fuzzy", "inferred"]
    start: str  # ISO 8601 UTC
    offset: float
    end_offset: float
    score: float
    segment: int
    products: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    banned: list[str] = field(default_factory=list)  # banned-word categories heard
    # Where the matched words themselves begin and end (offsets like ``offset``): the
    # query's words, or the mentions browsed; the utterance's times when unknown.
    match_offset: float | None = None
    match_end_offset: float | None = None
    kind: DocKind = "speech"


@dataclass(frozen=True)
class SearchResult:
    total: int
    hits: list[Hit]
    total_relation: Literal["eq", "gte"] = "eq"  # "gte": at least ``total`` (capped)


class SearchIndex(Protocol):
    def replace_segment(
        self, stream: str, segment: int, docs: Sequence[UtteranceDoc], kind: DocKind = "speech"
    ) -> None:
        """Make ``docs`` the segment's documents of ``kind`` (its utterances, or its screen
        text); those of other kinds stay (idempotent; visible to the next search)."""
        ...

    def put_documents(self, docs: Sequence[UtteranceDoc]) -> None:
        """Add documents, or replace those of the same id (stream events: written once,
        indexed as they arrive; visible to the next search)."""
        ...

    def search(self, query: SearchQuery) -> SearchResult: ...

    def count(self, stream: str | None = None) -> int: ...

    def clear(self) -> None: ...

    def optimize(self) -> None:
        """Compact after bulk writes (a reindex); engines that merge on their own skip it."""
        ...

    def close(self) -> None: ...
