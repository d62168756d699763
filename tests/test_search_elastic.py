"""The Elasticsearch backend without a server: its mappings, the request bodies it sends,
its bulk error handling and its paging, checked against the embedded engine on the
search contract's data. With LIVEWITNESS_ES_URL set, the same comparison runs against a
real cluster."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError, InvalidInputError, StorageError, StorageUnavailableError
from core.phonetic import sound_tokens
from indexer.documents import Mention, UtteranceDoc
from indexer.elastic import (
    BM25_SCRIPT,
    MAX_RESULT_WINDOW,
    Action,
    ElasticSearchIndex,
    Kind,
    build_search_body,
    document_body,
    index_mappings,
    index_settings,
    paged_search,
    parse_hits,
    redact,
    segment_actions,
    sound_window,
    to_hit,
    triage,
)
from indexer.embedded import EmbeddedSearchIndex
from indexer.protocol import TOTAL_CAP, DocKind, Hit, SearchIndex, SearchQuery, SearchResult
from indexer.query import bigrams
from indexer.service import Indexer
from storage.products import parse_products
from storage.stores import Stores
from tests.support.searchdata import MISHEARD, SHOP, T0, add_stream

NO_CLUSTER = (
    "Elasticsearch conformance not run: set LIVEWITNESS_ES_URL to a cluster"
    " (docker compose up elasticsearch)"
)


def doc(text: str = "全网最低价假一赔十", **fields: Any) -> UtteranceDoc:
    values: dict[str, Any] = {
        "id": "shop:00000001:000",
        "stream": "shop",
        "streamer": "anna",
        "segment": 1,
        "number": 0,
        "text": text,
        "start": "2026-11-20T12:00:10.200Z",
        "offset": 10.2,
        "end_offset": 12.0,
        "words": [],
    }
    return UtteranceDoc(**(values | fields))


# -- mappings ------------------------------------------------------------------------------
def test_mappings_type_every_field() -> None:
    mappings = index_mappings()
    fields = mappings["properties"]
    assert mappings["dynamic"] == "strict"
    for name in ("id", "stream", "streamer", "products", "claims", "banned", "kind"):
        assert fields[name] == {"type": "keyword"}, name
    assert fields["start"]["type"] == "date"
    assert fields["segment"]["type"] == "integer"
    assert fields["offset"]["type"] == fields["end_offset"]["type"] == "float"
    for name in ("exact", "sound"):
        assert fields[name]["type"] == "text" and fields[name]["analyzer"] == "whitespace"
    assert fields["text"] == {"type": "text", "analyzer": "cjk"}
    assert fields["doc"] == {"type": "object", "enabled": False}


def test_settings_are_near_real_time_with_a_score_free_of_index_statistics() -> None:
    settings = index_settings(shards=2, replicas=0)
    assert settings["refresh_interval"] == "1s"
    assert (settings["number_of_shards"], settings["number_of_replicas"]) == (2, 0)
    assert settings["max_result_window"] == MAX_RESULT_WINDOW
    (similarity,) = settings["similarity"].values()
    assert similarity["type"] == "scripted" and similarity["script"]["source"] == BM25_SCRIPT
    # Deleted documents linger in these until a merge: a score using them would differ
    # between an incremental index and a rebuilt one.
    assert "docFreq" not in BM25_SCRIPT and "docCount" not in BM25_SCRIPT
    assert index_mappings()["properties"]["exact"]["similarity"] in settings["similarity"]


def test_a_document_carries_the_embedded_engines_tokens() -> None:
    utterance = doc(
        "今天这款羽绒服只要九十九元",
        products=[Mention("羽绒服", "羽绒服", "羽绒服", "exact", 11.0, 11.6)],
        claims=[
            Mention("price", "九十九元", "九十九元", "exact", 12.0, 12.8),
            Mention("price", "只要", "只要", "exact", 11.6, 12.0),
        ],
        banned=[{"category": "absolute", "term": "最低价"}],
    )
    body = document_body(utterance)
    assert body["exact"] == " ".join(bigrams(utterance.exact_form))
    assert body["exact"].startswith("今天 天这") and "99 9元" in body["exact"]
    assert body["sound"] == " ".join(sound_tokens(utterance.text))
    assert body["products"] == ["羽绒服"] and body["claims"] == ["price"]
    assert body["banned"] == ["absolute"]
    assert body["doc"] == utterance.as_json()
    assert set(body) - {"doc"} <= set(index_mappings()["properties"])


# -- query bodies --------------------------------------------------------------------------
def test_text_is_a_phrase_of_bigrams_on_the_exact_field() -> None:
    body = build_search_body(SearchQuery(text="羽絨服"), "exact", 0, 20)  # Traditional folds
    assert body["query"] == {
        "bool": {"must": [{"match_phrase": {"exact": {"query": "羽绒 绒服"}}}], "filter": []}
    }
    assert body["sort"] == [{"_score": "desc"}, {"start": "asc"}, {"id": "asc"}]
    assert (body["from"], body["size"]) == (0, 20)
    assert body["track_total_hits"] == TOTAL_CAP and body["_source"] == ["doc"]


def test_sound_alike_excludes_the_exact_hits() -> None:
    body = build_search_body(SearchQuery(text="假一赔十"), "sound-alike", 0, 20)
    assert body["query"] == {
        "bool": {
            "must": [{"match_phrase": {"sound": {"query": "jia yi pei si"}}}],
            "must_not": [{"match_phrase": {"exact": {"query": "假1 1赔 赔1 10"}}}],
            "filter": [],
        }
    }


@pytest.mark.parametrize(
    ("argument", "field"),
    [("stream", "stream"), ("streamer", "streamer"), ("product", "products"), ("claim", "claims")],
)
def test_each_filter_is_a_term_filter(argument: str, field: str) -> None:
    query = SearchQuery(text="包邮", **{argument: "值"})  # type: ignore[arg-type]
    for kind in ("exact", "sound-alike"):
        assert build_search_body(query, kind, 0, 5)["query"]["bool"]["filter"] == [
            {"term": {field: "值"}}
        ]


def test_the_time_range_rounds_to_stored_milliseconds() -> None:
    since = datetime(2026, 11, 20, 12, 0, 14, 500, tzinfo=UTC)  # 0.5 ms past a stored start
    until = datetime(2026, 11, 20, 20, 0, 14, 999, tzinfo=UTC) + timedelta(hours=-8)
    query = SearchQuery(text="包邮", since=since, until=until)
    (window,) = build_search_body(query, "exact", 0, 5)["query"]["bool"]["filter"]
    millis = int(datetime(2026, 11, 20, 12, 0, 14, tzinfo=UTC).timestamp() * 1000)
    assert window == {
        "range": {"start": {"gte": millis + 1, "lte": millis, "format": "epoch_millis"}}
    }


def test_time_order_and_browsing_sort_by_start() -> None:
    by_time = build_search_body(SearchQuery(text="包邮", sort="time"), "exact", 0, 5)
    assert by_time["sort"] == [{"start": "asc"}, {"id": "asc"}]
    assert by_time["track_scores"] is True  # the hit still says how well it matched
    browse = build_search_body(SearchQuery(text="", claim="returns"), "browse", 0, 5)
    assert browse["query"] == {"bool": {"filter": [{"term": {"claims": "returns"}}]}}
    assert browse["sort"] == [{"start": "asc"}, {"id": "asc"}]


def test_pages_are_windows_and_deep_pages_are_refused() -> None:
    body = build_search_body(SearchQuery(text="包邮", page=3, size=20), "exact", 40, 20)
    assert (body["from"], body["size"]) == (40, 20)
    with pytest.raises(InvalidInputError, match="first 10000 hits"):
        build_search_body(SearchQuery(text="包邮"), "exact", MAX_RESULT_WINDOW - 5, 10)


def test_pages_cut_the_combined_list_as_the_embedded_engine_does() -> None:
    for exact_total in range(7):
        for sound_total in range(7):
            exact = [f"e{i}" for i in range(exact_total)]
            sound = [f"s{i}" for i in range(sound_total)]
            for size in range(1, 5):
                for page in range(1, 6):
                    start, want = (page - 1) * size, page * size
                    expected = (exact + sound)[:want][start : start + size]
                    shown = exact[start : start + size]
                    offset, limit = sound_window(start, size, exact_total, len(shown))
                    assert shown + sound[offset : offset + limit] == expected


# -- writes --------------------------------------------------------------------------------
def test_a_segment_replacement_deletes_stale_ids_and_overwrites_the_rest() -> None:
    kept, added = doc(id="s:1:000"), doc(id="s:1:001", text="七天无理由退货")
    actions = segment_actions("lw-utterances-v1", [kept, added], ["s:1:000", "s:1:002"])
    assert [(a["_op_type"], a["_id"]) for a in actions] == [
        ("delete", "s:1:002"),
        ("index", "s:1:000"),
        ("index", "s:1:001"),
    ]
    assert all(a["_index"] == "lw-utterances-v1" for a in actions)
    assert actions[1]["_source"] == document_body(kept)
    replay = segment_actions("lw-utterances-v1", [kept, added], ["s:1:000", "s:1:001"])
    assert [a["_op_type"] for a in replay] == ["index", "index"]


def _actions(*ids: str) -> list[Action]:
    return [{"_op_type": "index", "_index": "i", "_id": i, "_source": {}} for i in ids]


def test_bulk_results_split_into_retries_and_failures_by_document_id() -> None:
    actions = [*_actions("ok", "throttled", "busy", "bad"), {"_op_type": "delete", "_id": "gone"}]
    results: list[tuple[bool, dict[str, Any]]] = [
        (True, {"index": {"_id": "ok", "status": 201}}),
        (False, {"index": {"_id": "throttled", "status": 429, "error": {"type": "es_rejected"}}}),
        # A whole chunk refused: streaming_bulk reports each action without its item id.
        (False, {"index": {"status": 503, "error": "ServiceUnavailable(503, 'unavailable')"}}),
        (
            False,
            {
                "index": {
                    "_id": "bad",
                    "status": 400,
                    "error": {"type": "mapper_parsing_exception", "reason": "failed to parse"},
                }
            },
        ),
        (False, {"delete": {"_id": "gone", "status": 404, "result": "not_found"}}),
    ]
    retry, failures = triage(actions, results)
    assert [a["_id"] for a in retry] == ["throttled", "busy"]
    assert [(f.id, f.status) for f in failures] == [("bad", 400), ("throttled", 429), ("busy", 503)]
    assert str(failures[0]) == "bad (400: mapper_parsing_exception: failed to parse)"
    with pytest.raises(StorageError, match="answered 1 of 2"):
        triage(_actions("a", "b"), results[:1])


# -- errors --------------------------------------------------------------------------------
def test_an_unreachable_cluster_is_one_line_without_credentials() -> None:
    with pytest.raises(StorageUnavailableError) as caught:
        ElasticSearchIndex("http://elastic:s3cret@127.0.0.1:9", request_timeout=2)
    message = str(caught.value)
    assert "\n" not in message and "s3cret" not in message
    assert message.startswith("Elasticsearch at http://127.0.0.1:9 cannot be reached")
    assert redact("https://u:p@es.example:9243/x") == "https://es.example:9243/x"


@pytest.mark.parametrize(
    ("url", "prefix", "message"),
    [("localhost", "livewitness", "scheme"), ("http://127.0.0.1:9", "Live Witness", "prefix")],
)
def test_settings_that_cannot_work_are_config_errors(url: str, prefix: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ElasticSearchIndex(url, prefix)


# -- the same answers as the embedded engine -----------------------------------------------
class Recorder:
    """Keeps what the Indexer writes: the documents both backends are given."""

    def __init__(self) -> None:
        self.segments: dict[tuple[str, int], list[UtteranceDoc]] = {}
        self.screens: dict[tuple[str, int], list[UtteranceDoc]] = {}  # screen text
        self.singles: dict[str, UtteranceDoc] = {}  # chat and cards, by id

    def replace_segment(
        self, stream: str, segment: int, docs: Sequence[UtteranceDoc], kind: DocKind = "speech"
    ) -> None:
        kept = self.segments if kind == "speech" else self.screens
        kept[(stream, segment)] = list(docs)

    def put_documents(self, docs: Sequence[UtteranceDoc]) -> None:
        self.singles |= {doc.id: doc for doc in docs}

    def all_docs(self) -> list[UtteranceDoc]:
        grouped = [*self.segments.values(), *self.screens.values()]
        return [d for docs in grouped for d in docs] + list(self.singles.values())

    def search(self, query: SearchQuery) -> SearchResult:
        raise NotImplementedError

    def count(self, stream: str | None = None) -> int:
        return sum(1 for d in self.all_docs() if stream in (None, d.stream))

    def clear(self) -> None:
        self.segments.clear()

    def close(self) -> None:
        pass


@pytest.fixture
def recorded(stores: Stores, tmp_path: Path) -> Recorder:
    """The search contract's streams (tests/test_search.py), as the Indexer writes them."""
    add_stream(stores, tmp_path, "shop", SHOP)
    add_stream(stores, tmp_path, "misheard", MISHEARD, T0 + timedelta(hours=1))
    for name in ("shop", "misheard"):
        products = parse_products(
            [{"name": "羽绒服", "sku": "YR-1"}, {"name": "手镯", "aliases": ["银镯"]}]
        )
        stores.catalog.set_products(stores.catalog.get_stream(name).id, products)
    # The Indexer keeps its state beside the embedded engine's file, whose directory
    # only that engine creates.
    (stores.settings.home / "search").mkdir(parents=True, exist_ok=True)
    recorder = Recorder()
    Indexer(stores, recorder).index_pending()
    return recorder


@pytest.fixture
def embedded(recorded: Recorder, tmp_path: Path) -> Iterator[EmbeddedSearchIndex]:
    index = EmbeddedSearchIndex(tmp_path / "embedded.sqlite3")
    _load(index, recorded)
    yield index
    index.close()


QUERIES = [
    SearchQuery(text=text, **filters)  # type: ignore[arg-type]
    for text in ("假一", "一赔", "最低价假一", "假一賠十", "包郵", "99元", "九十九元", "羽绒服")
    for filters in ({}, {"stream": "shop"}, {"stream": "misheard"}, {"sort": "time"})
] + [
    SearchQuery(text="这款", product="手镯"),
    SearchQuery(text="这款", product="羽绒服", stream="shop"),
    SearchQuery(text="下单", claim="free_shipping"),
    SearchQuery(text="这款", since=T0 + timedelta(minutes=30)),
    SearchQuery(text="这款", until=T0 + timedelta(seconds=25)),
    SearchQuery(text="这款", streamer="nobody"),
    SearchQuery(text="国家级", sound_alike=False),
    SearchQuery(text="七天无理由", stream="shop"),
    SearchQuery(text="", claim="returns"),
    SearchQuery(text="", product="手镯", stream="misheard"),
    *[
        SearchQuery(text=text, sort="time", size=size, page=page)
        for text in ("这款", "假一赔十", "包邮")
        for size in (1, 2, 3)
        for page in (1, 2, 3, 4)
    ],
]


def same_answer(got: SearchResult, want: SearchResult, query: SearchQuery) -> None:
    """Equal results but for scores; BM25 variants may order equally relevant hits apart,
    so relevance order is compared per match kind as a set."""
    assert got.total == want.total, query
    plain = [replace(h, score=0.0) for h in got.hits]
    expected = [replace(h, score=0.0) for h in want.hits]
    if query.sort == "time" or not query.text:
        assert plain == expected, query
    else:
        assert [h.match for h in plain] == [h.match for h in expected], query
        assert sorted(plain, key=lambda h: h.id) == sorted(expected, key=lambda h: h.id), query


# A reading of the query language subset the builders use, on the documents that
# document_body makes: whitespace tokens, phrases of consecutive tokens, keyword terms,
# an epoch_millis range, and the scripted BM25 for relevance order.
def _phrase_count(field: str, phrase: str) -> int:
    tokens, wanted = field.split(), phrase.split()
    return sum(tokens[i : i + len(wanted)] == wanted for i in range(len(tokens)))


def _matches(clause: dict[str, Any], source: dict[str, Any]) -> bool:
    ((kind, spec),) = clause.items()
    if kind == "bool":
        return all(
            _matches(c, source) for c in spec.get("must", []) + spec.get("filter", [])
        ) and not any(_matches(c, source) for c in spec.get("must_not", []))
    ((field, value),) = spec.items()
    if kind == "match_phrase":
        return _phrase_count(source[field], value["query"]) > 0
    if kind in ("term", "terms"):
        stored = source[field]
        wanted = value if kind == "terms" else [value]
        return any(v in (stored if isinstance(stored, list) else [stored]) for v in wanted)
    assert kind == "range" and field == "start" and value["format"] == "epoch_millis"
    millis = datetime.fromisoformat(source["start"]).timestamp() * 1000
    return bool(value.get("gte", millis) <= millis <= value.get("lte", millis))


def _score(body: dict[str, Any], source: dict[str, Any]) -> float:
    musts = body["query"]["bool"].get("must", [])
    score = 0.0
    for clause in musts:
        ((field, value),) = clause["match_phrase"].items()
        tf, length = _phrase_count(source[field], value["query"]), len(source[field].split())
        per_term = tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / 16.0))
        score += per_term * len(value["query"].split())
    return score


def read(sources: list[dict[str, Any]], query: SearchQuery) -> SearchResult:
    def fetch(kind: Kind, offset: int, limit: int) -> tuple[int, bool, list[Hit]]:
        body = build_search_body(query, kind, offset, limit)
        found = [s for s in sources if _matches(body["query"], s)]
        if body["sort"][0] == {"_score": "desc"}:
            found.sort(key=lambda s: (-_score(body, s), s["start"], s["id"]))
        else:
            found.sort(key=lambda s: (s["start"], s["id"]))
        window = found[body["from"] : body["from"] + body["size"]]
        response = {
            "hits": {
                # as Elasticsearch counts with track_total_hits set to a number
                "total": {
                    "value": min(len(found), body["track_total_hits"]),
                    "relation": "gte" if len(found) > body["track_total_hits"] else "eq",
                },
                "hits": [{"_source": {"doc": s["doc"]}, "_score": _score(body, s)} for s in window],
            }
        }
        return parse_hits(response, query, kind)

    return paged_search(query, fetch)


def test_the_request_bodies_find_what_the_embedded_engine_finds(
    recorded: Recorder, embedded: EmbeddedSearchIndex
) -> None:
    sources = [document_body(d) for docs in recorded.segments.values() for d in docs]
    assert len(sources) == embedded.count() == 10
    for query in QUERIES:
        same_answer(read(sources, query), embedded.search(query), query)
    sound_first = read(sources, SearchQuery(text="假一赔十"))
    assert [h.match for h in sound_first.hits] == ["exact", "sound-alike"]


@pytest.fixture
def room_recorded(stores: Stores, tmp_path: Path) -> Recorder:
    """Speech, chat, cards and screen text of one stream, as the Indexer writes them."""
    from storage.events import EventService
    from tests.support.timeline import ROOM, add_room, recent_t0, room_events

    t0 = recent_t0()
    add_room(stores, tmp_path, t0)
    EventService(stores).ingest_values(stores.catalog.get_stream(ROOM).id, room_events(t0))
    (stores.settings.home / "search").mkdir(parents=True, exist_ok=True)
    recorder = Recorder()
    Indexer(stores, recorder).index_pending()
    return recorder


KIND_QUERIES = [
    SearchQuery(text=text, kind=kind, **extra)  # type: ignore[arg-type]
    for text in ("包邮", "九十九", "羽绒服", "全网")
    for kind in (None, "speech", "chat", "screen", "card")
    for extra in ({}, {"sort": "time"})
] + [
    SearchQuery(text="", banned="absolute", kind="screen"),
    SearchQuery(text="", banned="absolute", kind="speech"),
    SearchQuery(text="", product="羽绒服", kind="card"),
    SearchQuery(text="包邮", product="羽绒服", kind="chat"),
]


def test_kind_filters_find_what_the_embedded_engine_finds(
    room_recorded: Recorder, tmp_path: Path
) -> None:
    """The kind filter's request bodies (speech: not another kind) against the embedded
    engine, on speech, chat, card and screen documents."""
    index = EmbeddedSearchIndex(tmp_path / "room.sqlite3")
    _load(index, room_recorded)
    sources = [document_body(d) for d in room_recorded.all_docs()]
    assert {s["kind"] for s in sources} == {"speech", "chat", "card", "screen"}
    for query in KIND_QUERIES:
        same_answer(read(sources, query), index.search(query), query)
    assert {h.kind for h in index.search(SearchQuery(text="包邮")).hits} == {"speech", "chat"}
    index.close()


def test_elasticsearch_filters_kinds_as_the_embedded_engine(
    cluster: ElasticSearchIndex, room_recorded: Recorder, tmp_path: Path
) -> None:
    index = EmbeddedSearchIndex(tmp_path / "room.sqlite3")
    _load(index, room_recorded)
    _load(cluster, room_recorded)
    _load(cluster, room_recorded)  # a replay replaces, never duplicates
    assert cluster.count() == index.count()
    for query in KIND_QUERIES:
        same_answer(cluster.search(query), index.search(query), query)
    index.close()


def test_sound_alike_scores_are_halved_as_in_the_embedded_engine() -> None:
    source = document_body(doc("假一陪时七天无理由退货"))
    response = {"hits": {"total": {"value": 1}, "hits": [{"_source": source, "_score": 3.0}]}}
    _, _, (hit,) = parse_hits(response, SearchQuery(text="假一赔十"), "sound-alike")
    assert (hit.match, hit.score) == ("sound-alike", 1.5)
    assert hit.highlighted == "<mark>假一陪时</mark>七天无理由退货"


def test_a_capped_exact_total_is_a_lower_bound_and_asks_for_no_sound_alikes() -> None:
    asked: list[Kind] = []

    def fetch(kind: Kind, offset: int, limit: int) -> tuple[int, bool, list[Hit]]:
        asked.append(kind)
        hits = [to_hit(document_body(doc("全国包邮"))["doc"], query, kind, 1.0)] * limit
        return (TOTAL_CAP, True, hits) if kind == "exact" else (5, False, hits)

    query = SearchQuery(text="包邮", size=3)
    result = paged_search(query, fetch)
    assert (result.total, result.total_relation, asked) == (TOTAL_CAP, "gte", ["exact"])
    assert len(result.hits) == 3
    asked.clear()
    past_the_window = paged_search(
        query, lambda kind, o, n: (asked.append(kind), (1000, False, []))[1]
    )
    assert (past_the_window.total_relation, asked) == ("gte", ["exact"])
    response = {"hits": {"total": {"value": TOTAL_CAP, "relation": "gte"}, "hits": []}}
    assert parse_hits(response, query, "exact")[:2] == (TOTAL_CAP, True)


def test_bad_queries_are_refused_before_any_request() -> None:
    def fetch(kind: Kind, offset: int, limit: int) -> tuple[int, bool, list[Hit]]:
        raise AssertionError("no request for a refused query")

    for query in (
        SearchQuery(text="x"),
        SearchQuery(text=""),
        SearchQuery(text="包邮", page=0),
        SearchQuery(text="包邮", page=11, size=100),  # past the result window
    ):
        with pytest.raises(InvalidInputError):
            paged_search(query, fetch)


# -- a real cluster ------------------------------------------------------------------------
@pytest.fixture
def cluster() -> Iterator[ElasticSearchIndex]:
    url = os.environ.get("LIVEWITNESS_ES_URL")
    if not url:
        pytest.skip(NO_CLUSTER)
    index = ElasticSearchIndex(
        url,
        f"lwtest-{uuid.uuid4().hex[:12]}",  # a fresh index, deleted afterwards
        api_key=os.environ.get("LIVEWITNESS_ES_API_KEY"),
        username=os.environ.get("LIVEWITNESS_ES_USERNAME"),
        password=os.environ.get("LIVEWITNESS_ES_PASSWORD"),
        ca_certs=os.environ.get("LIVEWITNESS_ES_CA_CERTS"),
        replicas=0,
    )
    yield index
    index.drop()
    index.close()


def _load(index: SearchIndex, recorded: Recorder) -> None:
    for (stream, segment), docs in recorded.segments.items():
        index.replace_segment(stream, segment, docs)
    for (stream, segment), docs in recorded.screens.items():
        index.replace_segment(stream, segment, docs, kind="screen")
    index.put_documents(list(recorded.singles.values()))


def test_elasticsearch_answers_as_the_embedded_engine(
    cluster: ElasticSearchIndex, recorded: Recorder, embedded: EmbeddedSearchIndex
) -> None:
    _load(cluster, recorded)
    _load(cluster, recorded)  # a replay replaces, never duplicates
    assert cluster.count() == embedded.count() == 10
    assert cluster.count("shop") == embedded.count("shop")
    answers = [cluster.search(q) for q in QUERIES]
    for query, answer in zip(QUERIES, answers, strict=True):
        same_answer(answer, embedded.search(query), query)
    cluster.clear()
    assert cluster.count() == 0
    _load(cluster, recorded)
    assert [cluster.search(q) for q in QUERIES] == answers  # scores included
    (stream, segment), docs = next(iter(recorded.segments.items()))
    cluster.replace_segment(stream, segment, docs[:1])
    assert cluster.count() == 10 - len(docs) + 1
