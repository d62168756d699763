"""What only the embedded engine does: time-keyed row ids, the rank window, capped totals
and its on-disk layout. The shared behaviour is in test_search.py."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.timeutil import iso
from indexer import embedded
from indexer.documents import UtteranceDoc
from indexer.embedded import EmbeddedSearchIndex, time_key
from indexer.protocol import TOTAL_CAP, SearchQuery
from indexer.query import bigrams
from tests.support.searchdata import T0


def utterance(n: int, text: str, seconds: float, stream: str = "shop") -> UtteranceDoc:
    return UtteranceDoc(
        id=f"{stream}:{n // 100:08d}:{n % 100:03d}",
        stream=stream,
        streamer=None,
        segment=n // 100,
        number=n % 100,
        text=text,
        start=iso(T0 + timedelta(seconds=seconds)),
        offset=seconds,
        end_offset=seconds + 1.5,
        words=[],
    )


@pytest.fixture
def index(tmp_path: Path) -> EmbeddedSearchIndex:
    return EmbeddedSearchIndex(tmp_path / "search.sqlite3")


def test_row_ids_follow_time_not_insertion(index: EmbeddedSearchIndex) -> None:
    # Loaded newest first (a late transcript, a reindex in any order): time order holds.
    index.bulk_load([utterance(n, f"全国包邮第{n}单", 100.0 - n) for n in range(50)])
    ordered = index.search(SearchQuery(text="包邮", sort="time", size=50))
    starts = [h.start for h in ordered.hits]
    assert starts == sorted(starts) and len(starts) == 50
    window = index.search(
        SearchQuery(
            text="包邮",
            since=T0 + timedelta(seconds=60),
            until=T0 + timedelta(seconds=70),
            sort="time",
        )
    )
    assert [h.offset for h in window.hits] == [float(s) for s in range(60, 71)]


def test_utterances_starting_in_the_same_millisecond_all_stay(
    index: EmbeddedSearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    same = [utterance(n, "全国包邮", 5.0, stream=f"room{n}") for n in range(20)]
    assert all(time_key(5.0, d.id) >> embedded.KEY_BITS == 5000 for d in same)
    # The worst case: every key collides exactly.
    monkeypatch.setattr(embedded, "time_key", lambda start, doc_id: 5000 << embedded.KEY_BITS)
    index.bulk_load(same)
    index.bulk_load(same[:5])  # replayed: replaced, not duplicated
    assert index.count() == 20
    result = index.search(SearchQuery(text="包邮", size=100))
    assert result.total == 20 and {h.stream for h in result.hits} == {d.stream for d in same}


def test_totals_are_capped_and_reported_as_a_lower_bound(index: EmbeddedSearchIndex) -> None:
    index.bulk_load([utterance(n, "今天全国包邮", n * 0.01) for n in range(TOTAL_CAP + 5)])
    capped = index.search(SearchQuery(text="包邮"))
    assert (capped.total, capped.total_relation, len(capped.hits)) == (TOTAL_CAP, "gte", 20)
    window = SearchQuery(text="包邮", until=T0 + timedelta(seconds=10), sound_alike=False)
    assert (index.search(window).total, index.search(window).total_relation) == (1001, "eq")
    # With sound-alikes asked for: they would only follow 1001 exact hits, past the
    # result window, so they are not counted and the total is a lower bound.
    alike = index.search(replace(window, sound_alike=True))
    assert (alike.total, alike.total_relation) == (1001, "gte")


def test_relevance_ranks_the_newest_matches(
    index: EmbeddedSearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "RANK_WINDOW", 10)
    # The shortest utterance ranks first by bm25 but is older than the window.
    index.bulk_load([utterance(0, "包邮", 0.0)])
    index.bulk_load([utterance(n, "这一款今天也是全国包邮的哦", float(n)) for n in range(1, 21)])
    newest_first = index.search(SearchQuery(text="包邮", size=20))
    assert newest_first.total == 21
    assert "shop:00000000:000" not in [h.id for h in newest_first.hits[:10]]
    monkeypatch.setattr(embedded, "RANK_WINDOW", 1000)
    assert index.search(SearchQuery(text="包邮")).hits[0].id == "shop:00000000:000"


def test_an_index_of_an_older_layout_asks_for_reindex(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE utterances (rowid INTEGER PRIMARY KEY, id TEXT, doc TEXT)")
    old = EmbeddedSearchIndex(path)
    with pytest.raises(ConfigError, match="livewitness reindex"):
        old.search(SearchQuery(text="包邮"))
    old.clear()  # what reindex does first
    old.bulk_load([utterance(1, "全国包邮", 1.0)])
    assert old.search(SearchQuery(text="包邮")).total == 1
    old.close()
    assert EmbeddedSearchIndex(path).count() == 1


def test_an_index_of_layout_3_gains_kinds_in_place(tmp_path: Path) -> None:
    """Layout 3 (speech only, no kind column) is upgraded when opened, without a
    reindex: its utterances are speech, and chat added beside them is told apart."""
    path = tmp_path / "v3.sqlite3"
    said = utterance(1, "全国包邮", 1.0)
    with sqlite3.connect(path) as db:  # layout 3, as an earlier release wrote it
        db.execute(
            "CREATE TABLE utterances (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
            " stream TEXT NOT NULL, segment INTEGER NOT NULL, doc TEXT NOT NULL)"
        )
        db.execute("CREATE INDEX utterances_segment ON utterances (stream, segment)")
        db.execute(
            "CREATE VIRTUAL TABLE utterance_fts USING fts5 (exact, sound, meta,"
            " tokenize = 'unicode61 remove_diacritics 0')"
        )
        key = time_key(T0.timestamp() + 1.0, said.id)
        db.execute(
            "INSERT INTO utterances VALUES (?, ?, 'shop', 0, ?)",
            (key, said.id, json.dumps(said.as_json(), ensure_ascii=False)),
        )
        db.execute(
            "INSERT INTO utterance_fts (rowid, exact, sound, meta) VALUES (?, ?, ?, ?)",
            (
                key,
                " ".join(bigrams(said.exact_form)),
                " ".join(embedded.sound_pairs(said.sounds)),
                embedded.tag("s", "shop"),
            ),
        )
        db.execute("PRAGMA user_version = 3")
    upgraded = EmbeddedSearchIndex(path)
    assert upgraded.search(SearchQuery(text="包邮", stream="shop")).total == 1
    chat = replace(utterance(2, "包邮吗", 2.0), id="shop:event:m1", segment=-1, kind="chat")
    upgraded.put_documents([chat])
    assert [h.kind for h in upgraded.search(SearchQuery(text="包邮", sort="time")).hits] == [
        "speech",
        "chat",
    ]
    assert upgraded.search(SearchQuery(text="包邮", kind="speech")).total == 1
    assert [h.id for h in upgraded.search(SearchQuery(text="包邮", kind="chat")).hits] == [
        "shop:event:m1"
    ]
    upgraded.replace_segment("shop", 0, [])  # speech of segment 0 only: the chat stays
    assert [h.kind for h in upgraded.search(SearchQuery(text="包邮")).hits] == ["chat"]
    upgraded.close()


def test_processes_opening_a_fresh_index_at_once_all_see_the_current_layout(
    tmp_path: Path,
) -> None:
    # Each instance has its own SQLite connection, as separate processes would: no opener
    # may see the tables before their version stamp and take the index for an old one.
    path = tmp_path / "fresh.sqlite3"
    start = threading.Barrier(8)
    counts: list[int] = []

    def open_and_count() -> None:
        start.wait()
        opened = EmbeddedSearchIndex(path)
        counts.append(opened.count())
        opened.close()

    threads = [threading.Thread(target=open_and_count) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == [0] * 8
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == embedded.SCHEMA_VERSION
