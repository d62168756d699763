"""The Elasticsearch search backend (scale-out), with the embedded engine's semantics.

The same tokens as :mod:`indexer.embedded` go into whitespace-analysed fields, so a query
means the same thing on both backends: ``exact`` holds the overlapping character bigrams
of the search form (any run of two or more characters is a phrase), ``sound`` the blurred
toneless pinyin. Filters are keyword fields. Hits are highlighted by
:func:`indexer.query.highlight`, not by Elasticsearch, so both backends return the same
``highlighted`` strings.

Scores come from a scripted BM25 that ignores collection statistics (fixed idf and
average length). Lucene counts deleted documents in its statistics until segments merge,
and every replayed segment deletes documents, so stock BM25 would give a rebuilt index
other scores than the incremental one and make ranking depend on merge timing and shard
placement. Within one query the idf is the same for every hit anyway, so the ranking is
still term frequency against utterance length, as in the embedded engine.

The request bodies and the paging are pure functions (:func:`index_mappings`,
:func:`build_search_body`, :func:`segment_actions`, :func:`triage`, :func:`paged_search`)
so they are tested without a server; :class:`ElasticSearchIndex` only sends them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    BadRequestError,
    ConnectionTimeout,
    Elasticsearch,
    TransportError,
)
from elasticsearch.helpers import streaming_bulk

from core.errors import ConfigError, InvalidInputError, StorageError, StorageUnavailableError
from core.phonetic import sound_tokens
from indexer.documents import UtteranceDoc
from indexer.protocol import DOC_KINDS, TOTAL_CAP, DocKind, Hit, SearchQuery, SearchResult
from indexer.protocol import MAX_RESULT_WINDOW as RESULT_WINDOW
from indexer.query import (
    bigrams,
    browsing,
    check_query,
    doc_kind,
    exact_form,
    highlight,
    match_times,
    mention_highlight,
    mention_kind,
    wanted_mentions,
)

Kind = Literal["exact", "sound-alike", "browse"]
Action = dict[str, Any]
# A list's count (up to TOTAL_CAP), whether it has more, and the hits of a window.
Fetch = Callable[[Kind, int, int], tuple[int, bool, list[Hit]]]

# Elasticsearch's default from + size limit; deeper pages need search_after, and nobody
# reviews evidence ten thousand hits deep, so such a page is refused in plain words.
MAX_RESULT_WINDOW = 10_000
MAPPING_VERSION = 1  # bump on an incompatible mapping change: a new index, then reindex
SIMILARITY = "livewitness_bm25"
# BM25 with its usual k1 and b; 16 tokens is about one spoken sentence.
BM25_SCRIPT = (
    "double tf = doc.freq;"
    " double norm = 0.25 + 0.75 * doc.length / 16.0;"
    " return query.boost * tf * 2.2 / (tf + 1.2 * norm);"
)
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
_PREFIX = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- pure builders -------------------------------------------------------------------------
def index_name(prefix: str) -> str:
    return f"{prefix}-utterances-v{MAPPING_VERSION}"


def index_settings(shards: int = 1, replicas: int = 1) -> dict[str, Any]:
    return {
        "number_of_shards": shards,
        "number_of_replicas": replicas,
        "refresh_interval": "1s",  # near real time: searchable within 2 s
        "max_result_window": MAX_RESULT_WINDOW,
        "similarity": {SIMILARITY: {"type": "scripted", "script": {"source": BM25_SCRIPT}}},
    }


def index_mappings() -> dict[str, Any]:
    keyword = {"type": "keyword"}
    tokens = {"type": "text", "analyzer": "whitespace", "similarity": SIMILARITY}
    return {
        "dynamic": "strict",  # a stray field is a bug, not something to guess a type for
        "properties": {
            "id": keyword,
            "stream": keyword,
            "streamer": keyword,
            "segment": {"type": "integer"},
            "start": {"type": "date"},
            # Shown offsets come from ``doc``; these are for range queries only.
            "offset": {"type": "float"},
            "end_offset": {"type": "float"},
            "products": keyword,
            "claims": keyword,
            "banned": keyword,
            # Added in place to an index of the first mapping (its documents, all speech,
            # have none: a speech filter excludes the other kinds).
            "kind": keyword,
            "exact": tokens,
            "sound": tokens,
            "text": {"type": "text", "analyzer": "cjk"},
            "doc": {"type": "object", "enabled": False},
        },
    }


def document_body(doc: UtteranceDoc) -> dict[str, Any]:
    """The indexed form of one utterance: the embedded engine's tokens and filter values."""
    return {
        "id": doc.id,
        "stream": doc.stream,
        "streamer": doc.streamer,
        "segment": doc.segment,
        "start": doc.start,
        "offset": doc.offset,
        "end_offset": doc.end_offset,
        "products": sorted({m.key for m in doc.products}),
        "claims": sorted({m.key for m in doc.claims}),
        "banned": sorted({b["category"] for b in doc.banned}),
        "kind": doc.kind,
        "exact": " ".join(bigrams(doc.exact_form)),
        "sound": " ".join(doc.sounds),
        "text": doc.text,
        "doc": doc.as_json(),
    }


def kind_clause(kind: DocKind) -> dict[str, Any]:
    """Documents of one kind: speech is every document not of another kind."""
    if kind == "speech":
        others = [k for k in DOC_KINDS if k != "speech"]
        return {"bool": {"must_not": [{"terms": {"kind": others}}]}}
    return {"term": {"kind": kind}}


def put_actions(index: str, docs: Sequence[UtteranceDoc]) -> list[Action]:
    """Bulk actions that add documents, or overwrite those of the same id."""
    return [
        {"_op_type": "index", "_index": index, "_id": doc.id, "_source": document_body(doc)}
        for doc in docs
    ]


def segment_actions(
    index: str, docs: Sequence[UtteranceDoc], stored_ids: Sequence[str]
) -> list[Action]:
    """Bulk actions that make ``docs`` a segment's utterances: deletes for stored ids no
    longer there, then every document under its deterministic id (a replay overwrites)."""
    keep = {doc.id for doc in docs}
    actions: list[Action] = [
        {"_op_type": "delete", "_index": index, "_id": stale}
        for stale in sorted(set(stored_ids) - keep)
    ]
    return actions + put_actions(index, docs)


def _millis(moment: datetime, *, up: bool) -> int:
    """Epoch milliseconds, rounded so a millisecond-precise start compares as the
    embedded engine's float comparison does (naive times are local, like .timestamp())."""
    micros = (moment.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)
    return -(-micros // 1000) if up else micros // 1000


def filter_clauses(query: SearchQuery) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = [
        {"term": {field: value}}
        for field, value in (
            ("stream", query.stream),
            ("streamer", query.streamer),
            ("products", query.product),
            ("claims", query.claim),
            ("banned", query.banned),
        )
        if value
    ]
    if query.kind is not None:
        clauses.append(kind_clause(query.kind))
    window: dict[str, Any] = {}
    if query.since:
        window["gte"] = _millis(query.since, up=True)
    if query.until:
        window["lte"] = _millis(query.until, up=False)
    if window:
        clauses.append({"range": {"start": {**window, "format": "epoch_millis"}}})
    return clauses


def _phrase(field: str, tokens: list[str]) -> dict[str, Any]:
    return {"match_phrase": {field: {"query": " ".join(tokens)}}}


def build_query(query: SearchQuery, kind: Kind) -> dict[str, Any]:
    """The query of one hit list: exact, sound-alike (never an exact hit), or a browse of
    a claim type's or product's mentions (filters only)."""
    filters = filter_clauses(query)
    if kind == "browse":
        return {"bool": {"filter": filters}}
    exact = _phrase("exact", bigrams(exact_form(query.text)))
    if kind == "exact":
        return {"bool": {"must": [exact], "filter": filters}}
    sound = _phrase("sound", sound_tokens(query.text))
    return {"bool": {"must": [sound], "must_not": [exact], "filter": filters}}


def build_sort(query: SearchQuery, kind: Kind) -> list[dict[str, str]]:
    # Ties are broken by time, then id, so pages never overlap or skip a hit.
    ordered = [{"start": "asc"}, {"id": "asc"}]
    if query.sort == "relevance" and kind != "browse":
        return [{"_score": "desc"}, *ordered]
    return ordered


def build_search_body(query: SearchQuery, kind: Kind, offset: int, limit: int) -> dict[str, Any]:
    if offset + limit > MAX_RESULT_WINDOW:
        raise InvalidInputError(
            f"only the first {MAX_RESULT_WINDOW} hits can be paged through; narrow the search"
        )
    return {
        "query": build_query(query, kind),
        "sort": build_sort(query, kind),
        "from": offset,
        "size": limit,
        "track_total_hits": TOTAL_CAP,  # counted up to the cap, as in the embedded engine
        "track_scores": True,  # a score even when sorted by time
        "_source": ["doc"],
    }


def sound_window(start: int, size: int, exact_total: int, exact_returned: int) -> tuple[int, int]:
    """(from, size) of the sound-alike list for a page that starts at ``start``: the
    sound-alike hits follow all exact ones, as in the embedded engine's combined list."""
    return max(0, start - exact_total), size - exact_returned


def wants_sounds(query: SearchQuery) -> bool:
    return query.sound_alike and len(sound_tokens(query.text)) >= 2


def to_hit(doc: dict[str, Any], query: SearchQuery, kind: Kind, score: float) -> Hit:
    if kind == "browse":
        wanted = wanted_mentions(doc, query)
        match = mention_kind(wanted)
        highlighted = mention_highlight(doc["text"], [m["heard"] for m in wanted])
    else:
        match = "exact" if kind == "exact" else "sound-alike"
        highlighted = highlight(doc["text"], query.text, kind)
    weight = 0.5 if kind == "sound-alike" else 1.0
    match_offset, match_end_offset = match_times(doc, query, match)
    return Hit(
        id=doc["id"],
        stream=doc["stream"],
        text=doc["text"],
        highlighted=highlighted,
        match=match,
        start=doc["start"],
        offset=doc["offset"],
        end_offset=doc["end_offset"],
        score=round(score * weight, 4),
        segment=doc["segment"],
        products=sorted({m["key"] for m in doc["products"]}),
        claims=sorted({m["key"] for m in doc["claims"]}),
        banned=sorted({b["category"] for b in doc.get("banned", [])}),
        match_offset=match_offset,
        match_end_offset=match_end_offset,
        kind=doc_kind(doc),
    )


def paged_search(query: SearchQuery, fetch: Fetch) -> SearchResult:
    """The embedded engine's search over two lists: all exact hits, then the sound-alike
    ones; a page is the slice of that combined list, the total both lists' counts.
    ``fetch(kind, offset, limit)`` returns one list's count and the hits of a window."""
    check_query(query)
    start = (query.page - 1) * query.size
    if browsing(query):
        total, capped, hits = fetch("browse", start, query.size)
        return SearchResult(total=total, hits=hits, total_relation=_relation(capped))
    total, capped, hits = fetch("exact", start, query.size)
    # Sound-alike hits follow every exact one: past the result window they cannot show,
    # so they are not looked for (and the total is a lower bound), as in the embedded engine.
    if wants_sounds(query) and total >= RESULT_WINDOW:
        capped = True
    elif wants_sounds(query):
        offset, limit = sound_window(start, query.size, total, len(hits))
        more, more_capped, alike = fetch("sound-alike", offset, limit)
        hits += alike
        capped = more_capped or total + more > TOTAL_CAP
        total = min(total + more, TOTAL_CAP)
    return SearchResult(total=total, hits=hits, total_relation=_relation(capped))


def _relation(capped: bool) -> Literal["eq", "gte"]:
    return "gte" if capped else "eq"


def parse_hits(
    response: dict[str, Any], query: SearchQuery, kind: Kind
) -> tuple[int, bool, list[Hit]]:
    hits = response["hits"]
    total = int(hits["total"]["value"])
    return (
        min(total, TOTAL_CAP),
        hits["total"].get("relation") == "gte" or total > TOTAL_CAP,
        [
            to_hit(hit["_source"]["doc"], query, kind, float(hit.get("_score") or 0.0))
            for hit in hits["hits"]
        ],
    )


@dataclass(frozen=True)
class Failure:
    id: str
    status: int
    reason: str

    def __str__(self) -> str:
        return f"{self.id} ({self.status}: {self.reason})"


def _reason(error: Any) -> str:
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
    return " ".join(str(error).split())


def triage(
    actions: Sequence[Action], results: Sequence[tuple[bool, dict[str, Any]]]
) -> tuple[list[Action], list[Failure]]:
    """Split streaming_bulk's per-action results (same order as the actions) into the
    actions worth retrying (throttled, server busy) and the failures (with their ids).
    A document Elasticsearch rejected outright (a mapping error) fails at once: sending
    the same bytes again cannot change the answer."""
    if len(actions) != len(results):
        raise StorageError(f"Elasticsearch answered {len(results)} of {len(actions)} writes")
    retry: list[Action] = []
    transient: list[Failure] = []
    failed: list[Failure] = []
    for action, (ok, result) in zip(actions, results, strict=True):
        ((operation, item),) = result.items()
        status = int(item.get("status", 500))
        if ok or (operation == "delete" and status == 404):  # already gone is gone
            continue
        failure = Failure(str(action["_id"]), status, _reason(item.get("error", "")))
        if status in TRANSIENT_STATUSES:
            retry.append(action)
            transient.append(failure)
        else:
            failed.append(failure)
    return retry, failed + transient


def redact(url: str) -> str:
    """The URL without user name or password, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


# -- the backend ---------------------------------------------------------------------------
class ElasticSearchIndex:
    """SearchIndex on an Elasticsearch 8/9 cluster (one index per ``index_prefix``)."""

    def __init__(
        self,
        url: str,
        index_prefix: str = "livewitness",
        *,
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        verify_certs: bool = True,
        ca_certs: str | None = None,
        request_timeout: float = 10.0,
        shards: int = 1,
        replicas: int = 1,
        write_attempts: int = 4,
        retry_backoff_seconds: float = 0.5,
    ) -> None:
        if not _PREFIX.fullmatch(index_prefix):
            raise ConfigError(
                f"Elasticsearch index prefix {index_prefix!r}: use lower-case letters, digits,"
                " '-' and '_'"
            )
        self.url = redact(url)
        self.index = index_name(index_prefix)
        self._prefix = index_prefix
        self._attempts = max(1, write_attempts)
        self._backoff = retry_backoff_seconds
        tls: dict[str, Any] = {"ca_certs": ca_certs} if ca_certs else {}
        try:
            self._es = Elasticsearch(
                url,
                api_key=api_key,
                basic_auth=(username, password or "") if username else None,
                verify_certs=verify_certs,
                request_timeout=request_timeout,
                **tls,
            )
        except ValueError as exc:
            raise ConfigError(f"Elasticsearch URL {self.url!r}: {exc}") from None
        try:
            self._ensure_index(shards, replicas)
        except BaseException:
            self._es.close()
            raise

    # -- setup -----------------------------------------------------------------------------
    def _ensure_index(self, shards: int, replicas: int) -> None:
        template = {"settings": index_settings(shards, replicas), "mappings": index_mappings()}
        with self._talking("set up its index"):
            # The template also covers an index re-created by a stray write after someone
            # deleted ours: it gets these mappings, never dynamically guessed ones.
            self._es.cluster.put_component_template(name=self.index, template=template)
            self._es.indices.put_index_template(
                name=f"{self._prefix}-utterances",
                index_patterns=[f"{self._prefix}-utterances-v*"],
                composed_of=[self.index],
                priority=500,
            )
            if not self._es.indices.exists(index=self.index):
                try:
                    self._es.indices.create(index=self.index, body=template)
                except ApiError as exc:
                    if _error_type(exc) != "resource_already_exists_exception":
                        raise  # another process creating it at the same time is fine
            try:
                # Checks an existing index: the same mappings are a no-op, others refused.
                self._es.indices.put_mapping(index=self.index, body=index_mappings())
            except BadRequestError as exc:
                raise ConfigError(
                    f"Elasticsearch index {self.index} has other mappings; delete it (or use"
                    f" another index prefix) and run `livewitness reindex`: {_api_reason(exc)}"
                ) from None

    def drop(self) -> None:
        """Delete the index and its templates (tests, or starting over before a reindex)."""
        with self._talking("delete its index"):
            self._es.indices.delete(index=self.index, ignore_unavailable=True)
            self._es.options(ignore_status=404).indices.delete_index_template(
                name=f"{self._prefix}-utterances"
            )
            self._es.options(ignore_status=404).cluster.delete_component_template(name=self.index)

    # -- writes ----------------------------------------------------------------------------
    def replace_segment(
        self, stream: str, segment: int, docs: Sequence[UtteranceDoc], kind: DocKind = "speech"
    ) -> None:
        with self._talking(f"index segment {segment} of {stream}"):
            stored = self._segment_ids(stream, segment, kind)
            self._write(segment_actions(self.index, docs, stored))

    def put_documents(self, docs: Sequence[UtteranceDoc]) -> None:
        with self._talking(f"index {len(docs)} document(s)"):
            self._write(put_actions(self.index, docs))

    def _segment_ids(self, stream: str, segment: int, kind: DocKind) -> list[str]:
        filters = [{"term": {"stream": stream}}, {"term": {"segment": segment}}, kind_clause(kind)]
        response = self._es.search(
            index=self.index,
            body={
                "query": {"bool": {"filter": filters}},
                "size": MAX_RESULT_WINDOW,
                "track_total_hits": True,
                "_source": False,
            },
        ).body
        ids = [str(hit["_id"]) for hit in response["hits"]["hits"]]
        if response["hits"]["total"]["value"] > len(ids):
            raise StorageError(f"segment {segment} of {stream} has too many utterances to replace")
        return ids

    def _write(self, actions: list[Action]) -> None:
        """Bulk-write with bounded retries of throttled items; a document that still does
        not land raises an error naming it, never vanishes."""
        pending = actions
        transient: list[Failure] = []
        for attempt in range(self._attempts):
            if not pending:
                return
            if attempt:
                time.sleep(min(self._backoff * 2 ** (attempt - 1), 30.0))
            # refresh=wait_for: the writes are visible to the next search, as the contract
            # asks, without forcing a refresh per segment on a busy cluster.
            results = list(
                streaming_bulk(
                    self._es,
                    pending,
                    max_retries=0,
                    raise_on_error=False,
                    raise_on_exception=False,
                    refresh="wait_for",
                )
            )
            pending, failures = triage(pending, results)
            rejected = [f for f in failures if f.status not in TRANSIENT_STATUSES]
            if rejected:
                raise StorageError(
                    f"Elasticsearch rejected {len(rejected)} document(s): "
                    + "; ".join(map(str, rejected[:5]))
                )
            transient = failures
        if pending:
            raise StorageUnavailableError(
                f"Elasticsearch at {self.url} did not take {len(pending)} document(s) after"
                f" {self._attempts} attempts: " + "; ".join(map(str, transient[:5]))
            )

    def optimize(self) -> None:
        """Elasticsearch merges segments in the background; a refresh makes writes visible."""
        with self._talking("refresh"):
            self._es.indices.refresh(index=self.index)

    def clear(self) -> None:
        with self._talking("clear its index"):
            self._es.delete_by_query(
                index=self.index,
                body={"query": {"match_all": {}}},
                conflicts="proceed",
                refresh=True,
            )

    def count(self, stream: str | None = None) -> int:
        query = {"term": {"stream": stream}} if stream is not None else {"match_all": {}}
        with self._talking("count documents"):
            return int(self._es.count(index=self.index, body={"query": query}).body["count"])

    def close(self) -> None:
        self._es.close()

    # -- reads -----------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> SearchResult:
        def fetch(kind: Kind, offset: int, limit: int) -> tuple[int, bool, list[Hit]]:
            body = build_search_body(query, kind, offset, limit)
            with self._talking("search"):
                response = self._es.search(index=self.index, body=body).body
            return parse_hits(response, query, kind)

        return paged_search(query, fetch)

    # -- errors ----------------------------------------------------------------------------
    @contextmanager
    def _talking(self, what: str) -> Iterator[None]:
        """Client exceptions become the project's errors, each one readable line."""
        try:
            yield
        except ConnectionTimeout:
            raise StorageUnavailableError(
                f"Elasticsearch at {self.url} did not answer in time ({what})"
            ) from None
        except TransportError as exc:
            raise StorageUnavailableError(
                f"Elasticsearch at {self.url} cannot be reached ({what}): {_cause(exc)}"
            ) from None
        except (AuthenticationException, AuthorizationException) as exc:
            raise ConfigError(
                f"Elasticsearch at {self.url} refused our credentials ({what}): {_api_reason(exc)}"
            ) from None
        except ApiError as exc:
            if _error_type(exc) == "media_type_header_exception":
                raise ConfigError(
                    f"Elasticsearch at {self.url} is older than this client (elasticsearch-py"
                    f" {version('elasticsearch')}); for an 8.x cluster install"
                    " 'elasticsearch>=8.12,<9'"
                ) from None
            if exc.status_code in TRANSIENT_STATUSES:
                raise StorageUnavailableError(
                    f"Elasticsearch at {self.url} is busy ({what}): {_api_reason(exc)}"
                ) from None
            raise StorageError(f"Elasticsearch refused to {what}: {_api_reason(exc)}") from None


def _error_type(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    return str(error.get("type", "")) if isinstance(error, dict) else ""


def _api_reason(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    if isinstance(error, dict):
        causes = error.get("root_cause") or [error]
        return f"{exc.status_code} {_reason(causes[0])}"
    return f"{exc.status_code} {_reason(exc.message)}"


def _cause(exc: TransportError) -> str:
    """The innermost reason of a connection failure ('Connection refused', a TLS error)."""
    text = " ".join(str(exc).split())
    found = re.search(r"\[Errno -?\d+\] ([^)\]'\"]+)", text)
    if found:
        return found.group(1).strip()
    return text[:200]
