"""Compliance end to end: banned words found in stored transcripts, kept with their word
times, reported (CLI, JSON and CSV), rescanned after a lexicon change, and posted live
to webhooks over real HTTP (signed, retried while the receiver is down, logged)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from compliance.alerts import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookNotifier,
    verify_signature,
)
from compliance.matcher import LEXICON_FILE
from core.settings import Settings
from core.timeutil import parse_iso, utc_now
from indexer.factory import open_search_index
from indexer.protocol import SearchQuery
from indexer.service import Indexer
from storage.stores import Stores, open_stores
from tests.support.cli import run_cli
from tests.support.searchdata import SEGMENT, T0, add_stream
from tests.support.webhook_receiver import WebhookReceiver

SALES = [
    [(0.5, "这款精华是国家级配方"), (4.0, "全网最低价只要九十九")],
    [(0.5, "最近很多人问第一次买怎么办"), (4.0, "用了可以祛斑美白")],
    [(1.0, "这个品质国家极的"), (5.0, "我们家超值好物")],
]


def word_offset(seq: int, at: float, char: int) -> float:
    """Where add_stream puts a character: one word each, 0.2 s apart."""
    return seq * SEGMENT + at + 0.2 * char


def index_all(stores: Stores) -> None:
    index = open_search_index(stores)
    try:
        Indexer(stores, index).index_pending()
    finally:
        index.close()


def test_hits_are_stored_with_word_times_category_severity_and_what_was_heard(
    stores: Stores, tmp_path: Path
) -> None:
    add_stream(stores, tmp_path, "shop", SALES)
    index_all(stores)
    hits = stores.catalog.banned_hits()
    assert [(h.term, h.category, h.severity, h.match, h.heard) for h in hits] == [
        ("国家级", "absolute", "critical", "exact", "国家级"),
        ("全网最低价", "false_price", "critical", "exact", "全网最低价"),
        ("祛斑", "medical", "medium", "exact", "祛斑"),
        ("美白", "efficacy", "low", "exact", "美白"),
        ("国家级", "absolute", "critical", "sound-alike", "国家极"),
    ]  # 最近 and 第一次 are not violations; 超值 is not in the shipped lexicon
    first, *_, misheard = hits
    assert first.offset == pytest.approx(word_offset(0, 0.5, 5))
    assert first.end_offset == pytest.approx(word_offset(0, 0.5, 7) + 0.18)
    assert first.at == T0 + timedelta(seconds=first.offset)
    assert "".join(w[0] for w in json.loads(misheard.words)) == "国家极"
    assert misheard.offset == pytest.approx(word_offset(2, 1.0, 4))
    assert all(h.source and h.lexicon_version == "2026.11.1" for h in hits)


def custom_lexicon(path: Path) -> Path:
    """The shipped lexicon plus a term of the user's own."""
    data = yaml.safe_load(LEXICON_FILE.read_text(encoding="utf-8"))
    data["version"] = "local.1"
    data["terms"].append(
        {"term": "超值", "category": "house_rule", "severity": "low", "source": "AdLaw-28"}
    )
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_a_lexicon_change_applies_to_new_transcripts_at_once_and_to_old_ones_by_rescan(
    home: Path, tmp_path: Path
) -> None:
    with open_stores(Settings(home=home)) as stores:
        add_stream(stores, tmp_path, "shop", SALES[:2])
        index_all(stores)
    lexicon = custom_lexicon(tmp_path / "lexicon.yaml")
    with open_stores(Settings(home=home, lexicon_path=lexicon)) as stores:
        add_stream(stores, tmp_path, "late", SALES[2:])  # a new transcript: the new term at once
        index_all(stores)
        terms = {
            (stores.catalog.stream_by_id(h.stream_id).name, h.term)
            for h in stores.catalog.banned_hits()
        }
        assert ("late", "超值") in terms and ("shop", "超值") not in terms
        old = [
            h.lexicon_version
            for h in stores.catalog.banned_hits([stores.catalog.get_stream("shop").id])
        ]
        assert set(old) == {"2026.11.1"}
    env = {"LIVEWITNESS_LEXICON_PATH": str(lexicon)}
    # shop never said 超值: a rescan keeps its hits and stamps them with the new version.
    rescan = run_cli(home, "compliance", "rescan", "--stream", "shop", **env)
    assert rescan.returncode == 0, rescan.stderr
    assert "rescanned 2 transcripts: 4 banned-word hits" in rescan.stdout
    with open_stores(Settings(home=home, lexicon_path=lexicon)) as stores:
        shop = stores.catalog.banned_hits([stores.catalog.get_stream("shop").id])
        assert {h.lexicon_version for h in shop} == {"local.1"} and len(shop) == 4
        index = open_search_index(stores)
        found = index.search(SearchQuery(text="", banned="house_rule"))
        assert [(h.stream, h.text) for h in found.hits] == [("late", "我们家超值好物")]
        index.close()


def test_a_rescan_finds_a_new_term_in_old_transcripts(home: Path, tmp_path: Path) -> None:
    with open_stores(Settings(home=home)) as stores:
        add_stream(stores, tmp_path, "shop", SALES)
        index_all(stores)
        assert "超值" not in {h.term for h in stores.catalog.banned_hits()}
    lexicon = custom_lexicon(tmp_path / "lexicon.yaml")
    rescan = run_cli(home, "compliance", "rescan", LIVEWITNESS_LEXICON_PATH=str(lexicon))
    assert rescan.returncode == 0, rescan.stderr
    with open_stores(Settings(home=home)) as stores:
        assert "超值" in {h.term for h in stores.catalog.banned_hits()}


def test_report_as_json_and_csv(home: Path, tmp_path: Path) -> None:
    with open_stores(Settings(home=home)) as stores:
        add_stream(stores, tmp_path, "shop", SALES)
        add_stream(stores, tmp_path, "other", SALES[:1], T0 + timedelta(hours=2))
        for name in ("shop", "other"):
            stores.catalog.set_stream_details(stores.catalog.get_stream(name).id, streamer="小美")
    done = run_cli(home, "compliance", "report", "--stream", "shop")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["total"] == 5 and report["streams"] == ["shop"]
    assert report["by_category"] == {
        "absolute": 2,
        "efficacy": 1,
        "false_price": 1,
        "medical": 1,
    }
    assert report["by_severity"] == {"critical": 3, "medium": 1, "low": 1}
    assert {"category": "absolute", "severity": "critical", "count": 2} in report[
        "by_category_and_severity"
    ]
    first = report["hits"][0]
    assert (first["term"], first["stream"]) == ("国家级", "shop")
    assert parse_iso(first["at"]) == T0 + timedelta(seconds=first["offset"])
    assert first["link"].endswith(f"#stream=shop&t={first['offset']:.1f}")

    window = run_cli(
        home,
        "compliance",
        "report",
        "--streamer",
        "小美",
        "--since",
        (T0 + timedelta(seconds=18)).isoformat(),
        "--format",
        "csv",
    )
    assert window.returncode == 0, window.stderr
    rows = list(csv.DictReader(io.StringIO(window.stdout)))
    # shop's third segment (国家极, at 21 s) and all of "other" (two hours later)
    assert [(r["stream"], r["term"], r["match"]) for r in rows] == [
        ("shop", "国家级", "sound-alike"),
        ("other", "国家级", "exact"),
        ("other", "全网最低价", "exact"),
    ]
    assert rows[0]["heard"] == "国家极" and rows[0]["link"].startswith("http://")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--stream", "nope"), "nope"),
        (("--streamer", "nobody"), "nobody"),
        ((), "one stream or one streamer"),
        (("--stream", "shop", "--format", "xml"), "json or csv"),
        (("--stream", "shop", "--since", "yesterday"), "yesterday"),
    ],
)
def test_bad_report_requests_get_one_line(
    home: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    with open_stores(Settings(home=home)) as stores:
        add_stream(stores, tmp_path, "shop", SALES[:1])
    done = run_cli(home, "compliance", "report", *args)
    assert done.returncode == 2 and message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_broken_lexicon_is_one_line_and_loses_nothing(home: Path, tmp_path: Path) -> None:
    with open_stores(Settings(home=home)) as stores:
        add_stream(stores, tmp_path, "shop", SALES[:1])
        index_all(stores)
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nterms: [{term: 最好}]\n", encoding="utf-8")
    done = run_cli(home, "compliance", "rescan", LIVEWITNESS_LEXICON_PATH=str(broken))
    assert done.returncode == 2 and str(broken) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    with open_stores(Settings(home=home)) as stores:
        assert len(stores.catalog.banned_hits()) == 2  # the hits found before are still there


# -- live alerts -------------------------------------------------------------------------
@pytest.fixture
def live(home: Path) -> Iterator[Stores]:
    settings = Settings(home=home, webhook_retry_initial_seconds=0.2, webhook_retry_max_seconds=1.0)
    with open_stores(settings) as stores:
        yield stores


@contextmanager
def indexer_stage(stores: Stores, receiver: WebhookReceiver) -> Iterator[None]:
    """The indexer stage as `livewitness indexer` runs it (indexer and notifier threads),
    stopped with the receiver at the end."""
    stop = threading.Event()
    index = open_search_index(stores)
    notifier = WebhookNotifier(stores.catalog, stores.settings)
    threads = [
        threading.Thread(target=Indexer(stores, index).follow, args=(stop, 0.2), daemon=True),
        threading.Thread(target=notifier.follow, args=(stop, 0.1), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        notifier.close()
        index.close()
        receiver.stop()


def test_live_hits_reach_a_webhook_signed_once_each(live: Stores, tmp_path: Path) -> None:
    receiver = WebhookReceiver()
    receiver.start()
    secret = "s3cret-for-the-test-0123456789"
    live.catalog.add_webhook(receiver.url, secret)
    with indexer_stage(live, receiver):
        stored = time.time()
        add_stream(live, tmp_path, "shop", SALES, utc_now() - timedelta(seconds=30))
        got = receiver.wait_for(5, timeout=30)
        time.sleep(1.0)  # a handover rebuild must not post the same hit again
    print(f"first alert {got[0].at - stored:.2f} s after the transcripts were stored")
    assert len(receiver.received) == 5
    terms = sorted((r.payload["term"], r.payload["match"]) for r in got)
    assert terms == sorted(
        [
            ("国家级", "exact"),
            ("全网最低价", "exact"),
            ("祛斑", "exact"),
            ("美白", "exact"),
            ("国家级", "sound-alike"),
        ]
    )
    for received in got:
        headers = {k.lower(): v for k, v in received.headers.items()}
        assert headers[EVENT_HEADER.lower()] == "banned_word"
        assert headers[DELIVERY_HEADER.lower()].isdigit()
        assert verify_signature(
            secret,
            headers[TIMESTAMP_HEADER.lower()],
            received.body,
            headers[SIGNATURE_HEADER.lower()],
        )
        assert not verify_signature(
            "another secret",
            headers[TIMESTAMP_HEADER.lower()],
            received.body,
            headers[SIGNATURE_HEADER.lower()],
        )
        payload = received.payload
        assert payload["stream"] == "shop" and payload["link"].startswith("http")
        assert parse_iso(payload["at"]) <= utc_now()
    log = live.catalog.deliveries(event="banned_word")
    assert [d.status for d in log] == ["delivered"] * 5


def test_a_receiver_that_is_down_gets_its_alerts_when_it_comes_back(
    live: Stores, tmp_path: Path
) -> None:
    receiver = WebhookReceiver()  # not started: connection refused
    live.catalog.add_webhook(receiver.url, "another-secret-0123456789")
    with indexer_stage(live, receiver):
        add_stream(live, tmp_path, "shop", SALES[:1], utc_now() - timedelta(seconds=20))
        deadline = time.time() + 30
        while time.time() < deadline:
            tries = [d.attempts for d in live.catalog.deliveries(event="banned_word")]
            if len(tries) == 2 and min(tries) >= 3:
                break
            time.sleep(0.1)
        assert len(tries) == 2 and min(tries) >= 3, tries
        assert {d.status for d in live.catalog.deliveries(event="banned_word")} == {"pending"}
        receiver.start()
        got = receiver.wait_for(2, timeout=30)
    assert sorted(r.payload["term"] for r in got) == ["全网最低价", "国家级"]
    for delivery in live.catalog.deliveries(event="banned_word"):
        log = json.loads(delivery.log)
        assert delivery.status == "delivered" and delivery.last_status == 200
        assert [entry["status"] for entry in log][-1] == 200
        assert all(e["status"] is None and "Connect" in e["error"] for e in log[:-1])
        gaps = [
            (parse_iso(b["at"]) - parse_iso(a["at"])).total_seconds()
            for a, b in itertools.pairwise(log[:-1])
        ]
        assert all(g >= 0.15 for g in gaps)  # backed off, not hammering
    listed = run_cli(live.settings.home, "webhooks", "log", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {e["status"] for e in json.loads(listed.stdout)} == {"delivered"}


def test_old_transcripts_go_to_reports_not_alerts(live: Stores, tmp_path: Path) -> None:
    live.catalog.add_webhook("http://127.0.0.1:9/never", "a-secret-that-is-long-enough")
    add_stream(live, tmp_path, "archive", SALES, T0)  # said days ago: an ingested file
    index_all(live)
    assert len(live.catalog.banned_hits()) == 5
    assert live.catalog.deliveries(event="banned_word") == []


def test_webhook_cli_refuses_bad_urls_and_short_secrets(home: Path) -> None:
    for args, message in (
        (("ftp://example.org/x",), "must be http, https"),
        (("http://169.254.169.254/latest/meta-data/",), "refused by the egress policy"),
        (("http://127.0.0.1:8000/x", "--secret", "short"), "16 characters"),
    ):
        done = run_cli(home, "webhooks", "add", *args)
        assert done.returncode == 2 and message in done.stderr
    added = run_cli(home, "webhooks", "add", "http://127.0.0.1:8000/x")
    assert added.returncode == 0 and "secret " in added.stdout
    assert "http://127.0.0.1:8000/x" in run_cli(home, "webhooks", "list").stdout
    assert run_cli(home, "webhooks", "remove", "1").returncode == 0
    missing = run_cli(home, "webhooks", "remove", "7")
    assert missing.returncode == 2 and "no webhook 7" in missing.stderr


def test_an_alert_from_the_fast_pass_says_so_and_is_confirmed_or_retracted_by_its_chunk(
    live: Stores, tmp_path: Path
) -> None:
    """A clause's provisional words (an early piece) alert at once, marked provisional.
    The chunk's transcript that replaces them is what the report holds: when it hears the
    term too, nothing more is sent; when it does not, a retraction is."""
    from dataclasses import replace

    from core.timeutil import iso
    from core.transcript import SegmentTranscript, TranscriptWord
    from storage.models import SpeechChunk
    from transcriber.worker import store_transcript

    receiver = WebhookReceiver()
    receiver.start()
    live.catalog.add_webhook(receiver.url, "s3cret-for-the-test-0123456789")
    add_stream(live, tmp_path, "fast", [[(0.5, "欢迎")]], utc_now() - timedelta(seconds=8))
    stream = live.catalog.get_stream("fast")
    (whole,) = live.catalog.transcripts(stream.id)
    said = SegmentTranscript.from_json(json.loads(whole.body))
    first = said.words[0]

    def words(at: float, text: str) -> tuple[TranscriptWord, ...]:
        """One word per character, 0.2 s apart, from stream second ``at``."""
        start = parse_iso(first.start) - timedelta(seconds=first.offset)
        return tuple(
            replace(
                first, text=c, offset=at + 0.2 * i, end_offset=at + 0.2 * i + 0.18,
                start=iso(start + timedelta(seconds=at + 0.2 * i)),
                end=iso(start + timedelta(seconds=at + 0.2 * i + 0.18)),
            )
            for i, c in enumerate(text)
        )  # fmt: skip

    def store(provisional: bool, at: float, seconds: float, text: str) -> None:
        """A speech chunk (or an early piece) catalogued, and its transcript stored."""
        chunk = live.catalog.add_speech_chunk(
            SpeechChunk(
                stream_id=stream.id, seq=0, segment_seq=0, starts_at=utc_now(), offset=at,
                duration=seconds, blob_key=f"x/{at}-{provisional}.wav", sha256="0" * 64,
                provisional=provisional,
            )
        )  # fmt: skip
        part = replace(
            said, part=chunk.seq + 1, provisional=provisional, from_offset=at,
            words=words(at + 0.1, text),
        )  # fmt: skip
        store_transcript(live, stream, 0, part)

    def hits(term: str, match: str) -> bool:
        return any((h.term, h.match) == (term, match) for h in live.catalog.banned_hits())

    def until(done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 15
        while not done():
            assert time.monotonic() < deadline, "not indexed in time"
            time.sleep(0.1)

    with indexer_stage(live, receiver):
        # The fast pass heard the sound-alike 国家极; its chunk heard 国家级.
        store(True, 2.0, 1.4, "品质国家极")
        (alert,) = receiver.wait_for(1, timeout=30)
        assert alert.payload["term"] == "国家级" and alert.payload["provisional"] is True
        store(False, 2.0, 1.6, "品质国家级")
        until(lambda: hits("国家级", "exact"))
        # The fast pass heard 全网最低价 where the chunk heard 今天特价了: retracted.
        store(True, 5.0, 1.4, "全网最低价")
        receiver.wait_for(2, timeout=30)
        store(False, 5.0, 1.6, "今天特价了")
        got = receiver.wait_for(3, timeout=30)
        time.sleep(1.0)  # nothing more: no second alert, no second retraction
    assert len(receiver.received) == 3
    events = [(r.payload["event"], r.payload["term"]) for r in got]
    assert events == [
        ("banned_word", "国家级"),
        ("banned_word", "全网最低价"),
        ("banned_word.retracted", "全网最低价"),
    ]
    retracted = got[2].payload
    assert (
        retracted["offset"] == got[1].payload["offset"] and retracted["at"] == got[1].payload["at"]
    )
    assert retracted["heard_provisionally"] == "全网最低价" and retracted["heard"] == "今天特价了"
    # The report holds the chunks' words: 国家级 exactly, no 全网最低价.
    assert {h.term for h in live.catalog.banned_hits()} == {"国家级"}
    assert hits("国家级", "exact")
