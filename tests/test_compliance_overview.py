"""The compliance overview over real HTTP (hits per streamer, stream, category and hour,
top terms, claim counts from the search index) and the early warning: a streamer's
banned-word rate jumping raises one ``compliance.spike`` webhook event per hour window,
posted to a real receiver, with the indexer's clock as the one thing injected."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from compliance.alerts import (
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookNotifier,
    verify_signature,
)
from compliance.spikes import raise_spikes
from core.settings import Settings
from core.timeutil import iso, parse_iso, utc_now
from indexer.factory import open_search_index
from indexer.service import Indexer
from storage.stores import Stores, open_stores
from tests.support.apiserver import running_api
from tests.support.cli import cli_in_process
from tests.support.postgres import POSTGRES_SKIP, POSTGRES_URL_VARIABLE, postgres_schema
from tests.support.searchdata import SHOP, T0, add_stream
from tests.support.webhook_receiver import WebhookReceiver

# 5 banned-word hits in 30 s: 国家级, 全网最低价, 祛斑, 美白 and 国家极 (sound-alike).
SALES = [
    [(0.5, "这款精华是国家级配方"), (4.0, "全网最低价只要九十九")],
    [(0.5, "最近很多人问第一次买怎么办"), (4.0, "用了可以祛斑美白")],
    [(1.0, "这个品质国家极的"), (5.0, "我们家超值好物")],
]
CALM = [SHOP[0]] * 5  # nothing banned: 50 s on air


def add_streamed(
    stores: Stores,
    tmp: Path,
    name: str,
    streamer: str,
    talk: list[list[tuple[float, str]]],
    t0: datetime,
) -> None:
    add_stream(stores, tmp, name, talk, t0)
    stores.catalog.set_stream_details(stores.catalog.get_stream(name).id, streamer=streamer)


def index_all(stores: Stores, now: datetime) -> None:
    index = open_search_index(stores)
    try:
        Indexer(stores, index, clock=lambda: now).index_pending()
    finally:
        index.close()


# -- the overview ------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def either(request: pytest.FixtureRequest, home: Path) -> Iterator[Stores]:
    """Stores on SQLite and on PostgreSQL (the hour buckets are SQL of each dialect)."""
    if request.param == "sqlite":
        with open_stores(Settings(home=home)) as opened:
            yield opened
        return
    base = os.environ.get(POSTGRES_URL_VARIABLE)
    if not base:
        pytest.skip(POSTGRES_SKIP)
    with postgres_schema(base) as url, open_stores(Settings(home=home, catalog_url=url)) as opened:
        yield opened


def test_the_overview_counts_hits_per_streamer_stream_category_and_hour(
    either: Stores, tmp_path: Path
) -> None:
    stores = either
    add_streamed(stores, tmp_path, "shop", "小王", SALES, T0)
    add_streamed(stores, tmp_path, "shop-2", "小王", SHOP, T0 + timedelta(hours=2))
    add_streamed(stores, tmp_path, "calm", "小李", CALM, T0 + timedelta(minutes=30))
    index_all(stores, T0 - timedelta(days=1))  # old transcripts: reports, no alerts
    since, until = T0 - timedelta(hours=1), T0 + timedelta(hours=5)
    with running_api(stores) as server, server.client("compliance") as client:
        answer = client.get(
            "/api/v1/compliance/overview",
            params={"since": iso(since), "until": iso(until), "bucket": "hour"},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["bucket"] == "hour" and len(body["buckets"]) == 6
        assert body["buckets"][1] == iso(T0)
        stored = stores.catalog.banned_hits()
        assert body["total"] == len(stored) == 6  # SALES' 5 and SHOP's 全网最低价
        shop, shop2, calm = (
            next(s for s in body["streams"] if s["stream"] == n) for n in ("shop", "shop-2", "calm")
        )
        # Each hit in the bucket of its hour, per category.
        assert shop["series"] == {
            "absolute": [0, 2, 0, 0, 0, 0],
            "false_price": [0, 1, 0, 0, 0, 0],
            "medical": [0, 1, 0, 0, 0, 0],
            "efficacy": [0, 1, 0, 0, 0, 0],
        }
        assert shop2["series"] == {"false_price": [0, 0, 0, 1, 0, 0]}
        assert calm["total"] == 0 and calm["series"] == {} and calm["recorded_seconds"] == 50
        assert shop["hits_per_hour"] == pytest.approx(5 / (30 / 3600), rel=1e-3)
        assert shop["top_terms"][0] == {
            "term": "国家级",
            "category": "absolute",
            "severity": "critical",
            "count": 2,
        }
        # Claims come from the search index: SHOP promises free shipping and returns.
        assert shop2["claims"].get("free_shipping", 0) >= 1
        assert shop2["claims"].get("returns", 0) >= 1
        assert body["claims"]["free_shipping"] == shop2["claims"]["free_shipping"]
        assert {"name": "returns", "label": "退换货 / returns"} in body["claim_types"]
        wang = next(s for s in body["streamers"] if s["streamer"] == "小王")
        assert wang["streams"] == ["shop", "shop-2"] and wang["total"] == 6
        assert wang["by_category"] == {"absolute": 2, "false_price": 2, "efficacy": 1, "medical": 1}
        assert body["streamers"][0]["streamer"] == "小王"  # most hits first
        # The range filters: the hour of SHOP's hit alone.
        narrow = client.get(
            "/api/v1/compliance/overview",
            params={"since": iso(T0 + timedelta(hours=2)), "until": iso(T0 + timedelta(hours=3))},
        ).json()
        assert narrow["total"] == 1 and [s["stream"] for s in narrow["streams"]] == ["shop-2"]
        # Bad input is one clear 4xx line.
        backwards = client.get(
            "/api/v1/compliance/overview", params={"since": iso(until), "until": iso(since)}
        )
        assert backwards.status_code == 400 and "ends before" in backwards.json()["error"]
        too_many = client.get(
            "/api/v1/compliance/overview",
            params={"since": iso(T0 - timedelta(days=60)), "until": iso(T0), "bucket": "hour"},
        )
        assert too_many.status_code == 400 and "buckets" in too_many.json()["error"]
        assert (
            client.get("/api/v1/compliance/overview", params={"bucket": "minute"}).status_code
            == 422
        )
        for role in ("reviewer", "case-system", "admin"):
            with server.client(role) as other:
                assert other.get("/api/v1/compliance/overview").status_code == 403, role
        with server.client() as anonymous:
            assert anonymous.get("/api/v1/compliance/overview").status_code == 401


# -- early warning -------------------------------------------------------------------------
NOW = T0 + timedelta(days=3)
SECRET = "spike-secret-0123456789abcdef"


@pytest.fixture
def watched(home: Path, tmp_path: Path, receiver: WebhookReceiver) -> Iterator[Stores]:
    """Two streamers: 小王 was calm for days and turns loud now; 小李 is as loud as ever."""
    settings = Settings(home=home, spike_min_hits=3, spike_multiple=3.0, spike_baseline_days=7)
    with open_stores(settings) as stores:
        stores.catalog.add_webhook(receiver.url, SECRET)
        add_streamed(
            stores, tmp_path, "wang-mon", "小王", [SHOP[1], *CALM], NOW - timedelta(days=2)
        )
        add_streamed(stores, tmp_path, "li-mon", "小李", SALES, NOW - timedelta(days=2))
        index_all(stores, NOW)  # days old by now: no alerts, no spikes
        add_streamed(stores, tmp_path, "wang-now", "小王", SALES, NOW - timedelta(minutes=5))
        add_streamed(stores, tmp_path, "li-now", "小李", SALES, NOW - timedelta(minutes=5))
        yield stores


def deliver(stores: Stores) -> None:
    notifier = WebhookNotifier(stores.catalog, stores.settings)
    try:
        notifier.deliver_due()
    finally:
        notifier.close()


def test_a_jump_in_a_streamers_rate_raises_one_spike_per_hour_window(
    watched: Stores, receiver: WebhookReceiver
) -> None:
    # The indexer checks after storing live hits: 小王's last hour (5 hits in 30 s on air)
    # against 1 hit in 60 s before; 小李's is their usual rate.
    index_all(watched, NOW)
    deliver(watched)
    got = receiver.wait_for(1, timeout=10)
    spikes = [r for r in got if r.headers.get(EVENT_HEADER) == "compliance.spike"]
    assert len(spikes) == 1, [r.payload for r in got]
    spike = spikes[0]
    headers = spike.headers
    assert verify_signature(
        SECRET, headers[TIMESTAMP_HEADER], spike.body, headers[SIGNATURE_HEADER]
    )
    payload = spike.payload
    assert payload["event"] == "compliance.spike" and payload["streamer"] == "小王"
    # Raised after the second transcript, the first to bring the hour to 3 hits or more
    # (2 + 2); the segments of the 30 s were all chained by then.
    assert payload["window"]["hits"] == 4 and payload["window"]["recorded_seconds"] == 30
    assert payload["baseline"]["hits"] == 1 and payload["baseline"]["recorded_seconds"] == 60
    assert payload["ratio"] == pytest.approx((4 / 30) / (1 / 60))
    assert parse_iso(payload["window"]["until"]) == NOW
    assert payload["rule"] == {"multiple": 3.0, "min_hits": 3, "baseline_days": 7}
    assert payload["streams"][0]["stream"] == "wang-now"
    assert payload["streams"][0]["link"].endswith("#stream=wang-now&t=15.2")  # 美白, the last
    assert payload["top_terms"][0]["term"] == "国家级"
    # Later in the same hour window: no repeat, however many hits arrive.
    assert raise_spikes(watched, NOW + timedelta(minutes=30)) == []
    assert [d.subject for d in watched.catalog.deliveries(event="compliance.spike")] == ["小王"]
    # An hour on, the window holds no hits of 小王's: nothing to raise.
    assert raise_spikes(watched, NOW + timedelta(minutes=61)) == []


def test_the_spike_check_runs_once_from_the_cli(stores: Stores, home: Path, tmp_path: Path) -> None:
    # Said 5 minutes ago; indexed by a clock two hours on, so the indexer's own check
    # leaves them to the command (which checks at the real time, default settings).
    add_streamed(stores, tmp_path, "now", "小张", SALES, utc_now() - timedelta(minutes=5))
    index_all(stores, utc_now() + timedelta(hours=2))
    first = cli_in_process(home, "compliance", "spikes")
    assert first.exit_code == 0, first.output
    assert "spike: 小张: 5 hits in the last hour" in first.output
    again = cli_in_process(home, "compliance", "spikes")
    assert again.exit_code == 0, again.output
    assert again.output.strip() == "no new spike"
