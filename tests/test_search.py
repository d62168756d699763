"""Search contract: one suite for every SearchIndex backend (the embedded engine always;
Elasticsearch when LIVEWITNESS_ES_URL points to a cluster)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from core.errors import InvalidInputError
from core.settings import Settings
from core.timeutil import iso
from indexer.factory import open_search_index, search_index_for
from indexer.protocol import SearchIndex, SearchQuery
from indexer.query import hit_match_times
from indexer.service import Indexer
from storage.catalog import TRANSCRIPTS_STORED
from storage.products import parse_products
from storage.stores import Stores
from tests.support.cli import run_cli
from tests.support.searchdata import MISHEARD, SHOP, T0, add_stream

NO_CLUSTER = (
    "Elasticsearch conformance not run: set LIVEWITNESS_ES_URL to a cluster"
    " (docker compose up elasticsearch)"
)


@pytest.fixture(params=["embedded", "elasticsearch"])
def settings(request: pytest.FixtureRequest, home: Path) -> Iterator[Settings]:
    """Every test here runs once per backend (this overrides conftest's ``settings``)."""
    if request.param == "embedded":
        yield Settings(home=home, search_backend="embedded")
        return
    url = os.environ.get("LIVEWITNESS_ES_URL")
    if not url:
        pytest.skip(NO_CLUSTER)
    chosen = Settings(
        home=home,
        search_backend="elasticsearch",
        es_url=url,
        es_index_prefix=f"lwtest-{uuid.uuid4().hex[:12]}",  # one index per test
        es_replicas=0,
    )
    yield chosen
    from indexer.elastic import ElasticSearchIndex

    leftover = search_index_for(chosen)
    assert isinstance(leftover, ElasticSearchIndex)
    leftover.drop()
    leftover.close()


def backend_env(settings: Settings) -> dict[str, str]:
    """What a CLI subprocess needs to use the same index (run_cli drops LIVEWITNESS_*)."""
    if settings.search_backend == "embedded":
        return {}
    env = {k: v for k, v in os.environ.items() if k.startswith("LIVEWITNESS_ES_")}
    return env | {
        "LIVEWITNESS_SEARCH_BACKEND": settings.search_backend,
        "LIVEWITNESS_ES_INDEX_PREFIX": settings.es_index_prefix,
        "LIVEWITNESS_ES_REPLICAS": "0",
    }


@pytest.fixture
def index(stores: Stores, tmp_path: Path) -> Iterator[SearchIndex]:
    add_stream(stores, tmp_path, "shop", SHOP)
    add_stream(stores, tmp_path, "misheard", MISHEARD, T0 + timedelta(hours=1))
    for name, streamer in (("shop", "小美"), ("misheard", "阿强")):
        stores.catalog.set_stream_details(stores.catalog.get_stream(name).id, streamer=streamer)
        products = parse_products(
            [{"name": "羽绒服", "sku": "YR-1"}, {"name": "手镯", "aliases": ["银镯"]}]
        )
        stores.catalog.set_products(stores.catalog.get_stream(name).id, products)
    search_index = open_search_index(stores)
    Indexer(stores, search_index).index_pending()
    yield search_index
    search_index.close()


def find(index: SearchIndex, text: str, **filters: object) -> list[tuple[str, str, str]]:
    result = index.search(SearchQuery(text=text, **filters))  # type: ignore[arg-type]
    return [(h.stream, h.text, h.match) for h in result.hits]


def test_any_run_of_two_or_more_characters_is_found(index: SearchIndex) -> None:
    for run in ("假一", "赔十", "一赔", "最低价假一", "无理由退货放心"):
        hits = find(index, run, stream="shop")
        assert ("shop", "全网最低价假一赔十", "exact") in hits or any(run in t for _, t, _ in hits)
        assert all(m == "exact" for _, t, m in hits if run in t)


def test_traditional_and_full_width_queries_fold(index: SearchIndex) -> None:
    assert find(index, "假一賠十", stream="shop")[0][1] == "全网最低价假一赔十"
    assert find(index, "包郵", stream="shop")[0][1] == "下单就包邮买一送一"


def test_spoken_and_written_numbers_find_each_other(index: SearchIndex) -> None:
    assert find(index, "99元", stream="shop")[0][1] == "今天这款羽绒服只要九十九元"
    assert find(index, "九十九元", stream="misheard")[0][1] == "今天这款与荣福只要99元"


@pytest.mark.parametrize(
    ("query", "heard"),
    [
        ("假一赔十", "假一陪时七天无理由退货"),
        ("包邮", "下单就包油这款手桌品质国家极"),
        ("手镯", "下单就包油这款手桌品质国家极"),
        ("国家级", "下单就包油这款手桌品质国家极"),
        ("羽绒服", "今天这款与荣福只要99元"),
    ],
)
def test_sound_alike_hits_are_found_and_marked(index: SearchIndex, query: str, heard: str) -> None:
    hits = find(index, query, stream="misheard")
    assert ("misheard", heard, "sound-alike") in hits


def test_sound_alike_hits_rank_below_exact_ones(index: SearchIndex) -> None:
    result = index.search(SearchQuery(text="假一赔十"))
    kinds = [h.match for h in result.hits]
    assert kinds[0] == "exact" and "sound-alike" in kinds
    assert kinds == sorted(kinds, key=lambda k: k != "exact")
    assert result.total == len(result.hits) == 2


def test_a_hit_carries_its_moment_and_highlight(index: SearchIndex) -> None:
    (hit,) = index.search(SearchQuery(text="七天无理由", stream="shop")).hits
    assert hit.highlighted == "<mark>七天无理由</mark>退货放心买"
    assert hit.start == "2026-11-20T12:00:14.000Z"
    assert hit.offset == 14.0 and hit.end_offset > hit.offset
    assert hit.segment == 1 and "returns" in hit.claims
    (alike,) = index.search(SearchQuery(text="羽绒服", stream="misheard")).hits
    assert alike.highlighted == "今天这款<mark>与荣福</mark>只要99元"


def test_filters_by_product_claim_stream_and_time(index: SearchIndex) -> None:
    bracelet = find(index, "这款", product="手镯")
    assert {t for _, t, _ in bracelet} == {"这款手镯是纯银的", "下单就包油这款手桌品质国家极"}
    assert find(index, "这款", product="羽绒服", stream="shop") == [
        ("shop", "今天这款羽绒服只要九十九元", "exact")
    ]
    shipping = find(index, "下单", claim="free_shipping")
    assert {s for s, _, _ in shipping} == {"shop", "misheard"}  # 包油 is heard as 包邮
    assert {s for s, _, _ in find(index, "这款", streamer="小美")} == {"shop"}
    later = find(index, "这款", since=T0 + timedelta(minutes=30))
    assert {s for s, _, _ in later} == {"misheard"}


def test_hits_carry_the_time_of_the_matched_words(index: SearchIndex) -> None:
    """Words are 0.2 s apart from their utterance's start (searchdata): the match's time
    is its first word's onset, not the utterance's, for text, sound-alike and browsing."""
    (hit,) = index.search(SearchQuery(text="包邮", stream="shop")).hits
    assert hit.offset == pytest.approx(20 + 1.0)  # segment 2, utterance at 1.0 s
    assert (hit.match_offset, hit.match_end_offset) == pytest.approx((21.0 + 0.6, 21.0 + 0.98))
    (alike,) = index.search(SearchQuery(text="羽绒服", stream="misheard")).hits
    assert alike.match == "sound-alike"  # 与荣福, characters 4-6 of its utterance
    assert alike.match_offset == pytest.approx(0.5 + 0.8)
    (price,) = index.search(SearchQuery(text="", claim="giveaway", stream="shop")).hits
    assert price.match_offset == pytest.approx(21.0 + 1.0)  # 买一送一, the 6th character
    times = hit_match_times(hit)
    assert times.start == iso(T0 + timedelta(seconds=21.6))
    assert times.end == iso(T0 + timedelta(seconds=21.98))


def test_sort_by_time_and_paging(index: SearchIndex) -> None:
    everything = index.search(SearchQuery(text="这款", sort="time", size=100))
    times = [h.start for h in everything.hits if h.match == "exact"]
    assert times == sorted(times) and everything.total == 4
    pages = [
        index.search(SearchQuery(text="这款", sort="time", size=1, page=p)) for p in (1, 2, 3, 4)
    ]
    assert [p.hits[0].text for p in pages] == [h.text for h in everything.hits]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (SearchQuery(text="x"), "at least two"),
        (SearchQuery(text="，。"), "at least two"),
        (SearchQuery(text="包邮" * 101), "longer than"),
        (SearchQuery(text="包邮", size=0), "page size"),
        (SearchQuery(text="包邮", page=0), "page numbers"),
        (SearchQuery(text="包邮", page=11, size=100), "first 1000 hits"),
        (SearchQuery(text="包邮", since=T0, until=T0 - timedelta(days=1)), "ends before"),
    ],
)
def test_bad_queries_are_refused(index: SearchIndex, query: SearchQuery, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        index.search(query)


def test_replaying_transcripts_never_duplicates(stores: Stores, index: SearchIndex) -> None:
    before = index.count()
    indexer = Indexer(stores, index)
    indexer._indexed.clear()
    indexer.index_pending()
    assert index.count() == before == 10


def test_reindex_equals_the_incremental_index(stores: Stores, index: SearchIndex) -> None:
    queries = ["这款", "假一赔十", "包邮", "羽绒服", "99元"]
    incremental = [index.search(SearchQuery(text=q, size=50)) for q in queries]
    Indexer(stores, index).reindex()
    rebuilt = [index.search(SearchQuery(text=q, size=50)) for q in queries]
    assert rebuilt == incremental


def test_cli_search_json(
    home: Path, settings: Settings, stores: Stores, index: SearchIndex
) -> None:
    import json

    result = run_cli(home, "search", "假一赔十", "--json", **backend_env(settings))
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert [h["match"] for h in hits] == ["exact", "sound-alike"]
    for hit in hits:
        assert {"stream", "text", "match", "start", "offset"} <= hit.keys()
    bad = run_cli(home, "search", "x", **backend_env(settings))
    assert bad.returncode == 2 and "at least two" in bad.stderr and "Traceback" not in bad.stderr
    banned = run_cli(home, "search", "", "--banned", "absolute", "--json", **backend_env(settings))
    assert [(h["text"], h["banned"]) for h in json.loads(banned.stdout)] == [
        ("下单就包油这款手桌品质国家极", ["absolute"])
    ]


def test_the_indexer_follows_new_transcripts(stores: Stores, tmp_path: Path) -> None:
    """Near real time: a transcript stored while the indexer runs becomes searchable."""
    import threading
    import time

    index = open_search_index(stores)
    indexer = Indexer(stores, index)
    stop = threading.Event()
    follower = threading.Thread(target=indexer.follow, args=(stop, 0.2), daemon=True)
    follower.start()
    try:
        add_stream(stores, tmp_path, "later", [[(1.0, "顺丰包邮当天发货")]])
        deadline = time.monotonic() + 20
        while not index.search(SearchQuery(text="当天发货")).hits:
            assert time.monotonic() < deadline, "the new transcript never became searchable"
            time.sleep(0.1)
        (hit,) = index.search(SearchQuery(text="当天发货")).hits
        assert hit.stream == "later" and set(hit.claims) == {"delivery", "free_shipping"}
    finally:
        stop.set()
        follower.join(5)
        index.close()


def test_an_indexer_in_the_same_process_wakes_when_a_transcript_is_stored(
    stores: Stores, tmp_path: Path
) -> None:
    """In `serve` the indexer hears of a stored transcript at once: with a poll far
    longer than the wait below, only the catalog's wake-up can make it searchable."""
    import threading
    import time

    index = open_search_index(stores)
    stop = threading.Event()
    follower = threading.Thread(
        target=Indexer(stores, index).follow, args=(stop, 3600.0), daemon=True
    )
    follower.start()
    try:
        time.sleep(0.5)  # the follower has indexed nothing and is waiting
        add_stream(stores, tmp_path, "woken", [[(1.0, "顺丰包邮当天发货")]])
        deadline = time.monotonic() + 60
        while not index.search(SearchQuery(text="当天发货", stream="woken")).hits:
            assert time.monotonic() < deadline, "the indexer slept through the new transcript"
            time.sleep(0.1)
    finally:
        stop.set()
        stores.catalog.changes.mark(TRANSCRIPTS_STORED)  # wake it to see the stop
        follower.join(10)
        index.close()
    assert not follower.is_alive()


def test_what_was_promised_about_returns(index: SearchIndex) -> None:
    """A claim type alone is a question: every returns promise, in time order."""
    result = index.search(SearchQuery(text="", claim="returns"))
    assert [(h.stream, h.text) for h in result.hits] == [
        ("shop", "七天无理由退货放心买"),
        ("misheard", "假一陪时七天无理由退货"),
    ]
    assert result.hits[0].highlighted == "<mark>七天无理由退货</mark>放心买"
    shipping = index.search(SearchQuery(text="", claim="free_shipping", stream="misheard"))
    (hit,) = shipping.hits
    assert hit.match == "sound-alike" and "<mark>包油</mark>" in hit.highlighted
    with pytest.raises(InvalidInputError):
        index.search(SearchQuery(text=""))


def test_banned_words_are_indexed_with_their_category(index: SearchIndex) -> None:
    """Every absolute-term hit, by category alone: 国家极 is heard for 国家级; 最近 and
    第一次 in the same stream are not violations."""
    result = index.search(SearchQuery(text="", banned="absolute"))
    (hit,) = result.hits
    assert (hit.stream, hit.match, hit.banned) == ("misheard", "sound-alike", ["absolute"])
    assert "<mark>国家极</mark>" in hit.highlighted
    priced = index.search(SearchQuery(text="最低价", banned="false_price"))
    assert [(h.stream, h.text, h.banned) for h in priced.hits] == [
        ("shop", "全网最低价假一赔十", ["false_price"])
    ]
    assert index.search(SearchQuery(text="第一次", banned="absolute")).hits == []


@pytest.fixture
def room(stores: Stores, tmp_path: Path) -> Iterator[SearchIndex]:
    """The shop talk with chat, product cards and on-screen text, indexed as stored."""
    from storage.events import EventService
    from tests.support.timeline import ROOM, add_room, recent_t0, room_events

    t0 = recent_t0()
    add_room(stores, tmp_path, t0)
    stream = stores.catalog.get_stream(ROOM)
    report = EventService(stores).ingest_values(stream.id, room_events(t0))
    assert report.refused_by_reason() == {}
    search_index = open_search_index(stores)
    Indexer(stores, search_index).index_pending()
    yield search_index
    search_index.close()


def kinds(index: SearchIndex, text: str, **filters: object) -> list[tuple[str, str]]:
    result = index.search(SearchQuery(text=text, sort="time", **filters))  # type: ignore[arg-type]
    return [(h.kind, h.text) for h in result.hits]


def test_chat_cards_and_screen_text_are_found_by_kind(room: SearchIndex) -> None:
    """One search over speech, chat, on-screen text and cards, with the same folding
    (九十九 finds ¥99 on screen and on the card); ``kind`` narrows it to one of them."""
    assert kinds(room, "包邮") == [
        ("chat", "羽绒服包邮吗"),
        ("chat", "包邮！全网第一"),
        ("speech", "下单就包邮买一送一"),
    ]
    assert kinds(room, "包邮", kind="chat") == [
        ("chat", "羽绒服包邮吗"),
        ("chat", "包邮！全网第一"),
    ]
    assert kinds(room, "包邮", kind="speech") == [("speech", "下单就包邮买一送一")]
    # The sticker seen across the segment cut is one hit, at its first sighting.
    shown = room.search(SearchQuery(text="九十九", kind="screen"))
    (sticker,) = shown.hits
    assert (sticker.kind, sticker.text, sticker.offset) == ("screen", "到手价￥99", 7.0)
    assert kinds(room, "羽绒服", kind="card") == [
        ("card", "羽绒服 加厚款 129元"),
        ("card", "羽绒服 加厚款 99元"),
    ]
    assert kinds(room, "九十九", kind="card") == [("card", "羽绒服 加厚款 99元")]
    # Product mentions work on every kind: the chat question names the product.
    assert kinds(room, "包邮", kind="chat", product="羽绒服") == [("chat", "羽绒服包邮吗")]
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        room.search(SearchQuery(text="包邮", kind="video"))  # type: ignore[arg-type]


def test_banned_terms_on_screen_and_in_chat_are_hits_of_their_kind(room: SearchIndex) -> None:
    """A banned term on a banner or in the chat is a violation, found by its category."""
    assert kinds(room, "", banned="absolute") == [
        ("screen", "全网第一 品质保证"),
        ("chat", "包邮！全网第一"),
    ]
    assert kinds(room, "", banned="absolute", kind="screen") == [("screen", "全网第一 品质保证")]
    assert kinds(room, "", banned="false_price", kind="speech") == [
        ("speech", "全网最低价假一赔十")
    ]


def test_the_indexer_follows_new_events_and_screen_text(stores: Stores, room: SearchIndex) -> None:
    """Events and screen text stored later are indexed at the next poll (by catalog id);
    a segment read again replaces its screen documents, and a reindex keeps them all."""
    from storage.events import EventService
    from tests.support.timeline import ROOM, screen_line

    stream = stores.catalog.get_stream(ROOM)
    t0 = stores.catalog.first_segment(stream.id).starts_at  # type: ignore[union-attr]
    later = {"id": "m9", "kind": "chat", "at": iso(t0 + timedelta(seconds=25)), "text": "手镯好看"}
    EventService(stores).ingest_values(stream.id, [later])
    stores.catalog.replace_screen_text(stream.id, 2, [screen_line(t0, 2, "纯银手镯", 21.0, 29.0)])
    indexer = Indexer(stores, room)
    indexer.index_pending()
    assert kinds(room, "手镯", kind="chat") == [("chat", "手镯还有吗"), ("chat", "手镯好看")]
    assert kinds(room, "手镯", kind="screen") == [("screen", "纯银手镯")]
    stores.catalog.replace_screen_text(stream.id, 2, [screen_line(t0, 2, "银镯特价", 21.0, 29.0)])
    indexer.index_pending()
    assert kinds(room, "手镯", kind="screen") == []
    assert kinds(room, "银镯", kind="screen") == [("screen", "银镯特价")]
    before = room.count(ROOM)
    indexer.reindex()
    assert room.count(ROOM) == before
    assert kinds(room, "银镯", kind="screen") == [("screen", "银镯特价")]


def test_cli_search_kind(home: Path, settings: Settings, room: SearchIndex) -> None:
    import json

    result = run_cli(home, "search", "包邮", "--kind", "chat", "--json", **backend_env(settings))
    assert result.returncode == 0, result.stderr
    assert [(h["kind"], h["text"]) for h in json.loads(result.stdout)] == [
        ("chat", "羽绒服包邮吗"),
        ("chat", "包邮！全网第一"),
    ]
    bad = run_cli(home, "search", "包邮", "--kind", "video", **backend_env(settings))
    assert bad.returncode == 2 and "kind must be one of" in bad.stderr
    assert "Traceback" not in bad.stderr
