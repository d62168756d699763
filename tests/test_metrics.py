"""Prometheus metrics, scraped over real HTTP from ``serve_metrics`` and parsed with
prometheus_client's own parser: the catalog's counts after real recording, transcription
jobs, indexing and alert deliveries, and the indexer's own lag observations. The catalog
queries run on SQLite and, where configured, PostgreSQL (see tests/test_jobs.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from core.jobs import TRANSCRIBE_JOB
from core.settings import Settings
from core.timeutil import utc_now
from indexer.factory import open_search_index
from indexer.service import Indexer
from storage.catalog import StreamSummary
from storage.metrics import (
    INDEX_LAG,
    SEARCH_LATENCY,
    metrics_registry,
    render_metrics,
    serve_metrics,
)
from storage.stores import Stores, open_stores
from tests.support.postgres import POSTGRES_SKIP, POSTGRES_URL_VARIABLE, postgres_schema
from tests.support.searchdata import SEGMENT, add_stream

SALES = [
    [(0.5, "这款精华是国家级配方"), (4.0, "全网最低价只要九十九")],
    [(0.5, "最近很多人问第一次买怎么办"), (4.0, "用了可以祛斑美白")],
    [(1.0, "这个品质国家极的"), (5.0, "我们家超值好物")],
]
QUIET = [[(1.0, "大家好欢迎来到直播间")]]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest, home: Path) -> Iterator[Stores]:
    if request.param == "sqlite":
        opened = open_stores(Settings(home=home))
        yield opened
        opened.close()
        return
    base = os.environ.get(POSTGRES_URL_VARIABLE)
    if not base:
        pytest.skip(POSTGRES_SKIP)
    with postgres_schema(base) as url:
        opened = open_stores(Settings(home=home, catalog_url=url))
        yield opened
        opened.close()


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: v for (sample, labels), v in samples.items() if sample == name}


def index_lag_totals() -> tuple[float, float]:
    """(observations, seconds) of the index-lag histogram so far (it is process-wide)."""
    registry = CollectorRegistry()
    registry.register(INDEX_LAG)
    name = "livewitness_transcript_index_lag_seconds"
    count = registry.get_sample_value(f"{name}_count")
    seconds = registry.get_sample_value(f"{name}_sum")
    assert count is not None and seconds is not None
    return count, seconds


def index_all(stores: Stores) -> int:
    index = open_search_index(stores)
    try:
        return Indexer(stores, index).index_pending()
    finally:
        index.close()


def test_metrics_report_the_catalog_and_the_indexer_over_http(
    stores: Stores, tmp_path: Path
) -> None:
    stores, catalog = stores, stores.catalog
    catalog.add_webhook("http://127.0.0.1:9/hook", "a-secret-of-sixteen+")
    # Said a minute ago, so the banned words are recent enough to raise alerts.
    t0 = utc_now() - timedelta(seconds=60)
    add_stream(stores, tmp_path, "shop", SALES, t0)
    add_stream(stores, tmp_path, "quiet", QUIET, t0)
    shop, quiet = catalog.get_stream("shop"), catalog.get_stream("quiet")
    end = t0 + timedelta(seconds=SEGMENT * len(SALES))
    stores.chain.append_gap(shop.id, "shop", end, end + timedelta(seconds=7), "source dropped")
    catalog.set_status(shop.id, "recording")
    catalog.set_status(quiet.id, "stopped")

    # Four jobs were queued by the recording, claimed oldest first: two done, one failed
    # for good, one left queued.
    for _ in range(2):
        job = catalog.claim_job(TRANSCRIBE_JOB, "w", 60)
        assert job is not None
        catalog.finish_job(job.id, "w", audio_seconds=SEGMENT)
    job = catalog.claim_job(TRANSCRIBE_JOB, "w", 60)
    assert job is not None
    catalog.finish_job(job.id, "w", error="cannot decode", max_attempts=1)
    done = [j for j in catalog.jobs(shop.id) if j.status == "done"]
    assert len(done) == 2
    processing = sum(
        (j.finished_at - j.started_at).total_seconds()
        for j in done
        if j.finished_at is not None and j.started_at is not None
    )

    count_before, lag_before = index_lag_totals()
    assert index_all(stores) == len(SALES) + len(QUIET)

    deliveries = list(catalog.deliveries(event="banned_word"))
    assert len(deliveries) >= 3
    catalog.record_attempt(
        deliveries[0].id,
        delivered=True,
        status=200,
        error=None,
        next_attempt_at=None,
        elapsed_ms=3.0,
    )
    catalog.record_attempt(
        deliveries[1].id,
        delivered=False,
        status=500,
        error="HTTP 500",
        next_attempt_at=None,
        elapsed_ms=3.0,
    )

    server = serve_metrics(catalog, port=0)
    try:
        samples = scrape(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
        server.server_close()

    assert value(samples, "livewitness_catalog_up") == 1
    assert by_label(samples, "livewitness_segments_recorded_total", "stream") == {
        "shop": 3,
        "quiet": 1,
    }
    assert by_label(samples, "livewitness_recorded_seconds_total", "stream") == {
        "shop": pytest.approx(3 * SEGMENT),
        "quiet": pytest.approx(SEGMENT),
    }
    assert by_label(samples, "livewitness_gaps_total", "stream") == {"shop": 1, "quiet": 0}
    assert value(samples, "livewitness_transcription_backlog") == 1  # the queued one
    assert by_label(samples, "livewitness_transcription_jobs", "status") == {
        "done": 2,
        "failed": 1,
        "queued": 1,
    }
    assert value(samples, "livewitness_transcription_realtime_factor") == pytest.approx(
        2 * SEGMENT / processing
    )
    assert by_label(samples, "livewitness_alerts_total", "outcome") == {
        "delivered": 1,
        "failed": 1,
        "pending": len(deliveries) - 2,
    }
    assert by_label(samples, "livewitness_banned_hits_total", "category") == {
        "absolute": 2,  # 国家级, and 国家极 heard as it
        "false_price": 1,
        "medical": 1,
        "efficacy": 1,
    }
    assert by_label(samples, "livewitness_streams", "status") == {"recording": 1, "stopped": 1}

    # The stream list reads the same aggregates: all streams, or only those asked for.
    summaries = catalog.stream_summaries(TRANSCRIBE_JOB)
    assert summaries[shop.id] == StreamSummary(
        segments=3,
        seconds=pytest.approx(3 * SEGMENT),  # type: ignore[arg-type]
        first_segment_at=catalog.segments(shop.id)[0].starts_at,
        gaps=1,
        backlog=0,  # its jobs were claimed first (oldest first)
    )
    assert summaries[quiet.id].backlog == 1 and summaries[quiet.id].gaps == 0
    assert list(catalog.stream_summaries(TRANSCRIBE_JOB, [quiet.id])) == [quiet.id]

    # The indexer ran in this process: one lag per transcript, each a few seconds at most.
    indexed = len(SALES) + len(QUIET)
    assert value(samples, "livewitness_transcript_index_lag_seconds_count") == (
        count_before + indexed
    )
    lag_sum = value(samples, "livewitness_transcript_index_lag_seconds_sum") - lag_before
    assert 0 <= lag_sum < indexed * 30
    assert 0 <= value(samples, "livewitness_index_lag_seconds") < 30
    # Declared for the API (observed there); the process collectors come along.
    assert ("livewitness_search_latency_seconds_count", frozenset()) in samples
    assert value(samples, "process_resident_memory_bytes") > 0


def test_an_empty_catalog_reports_zero_alerts_and_no_realtime_factor(
    stores: Stores,
) -> None:
    body, content_type = render_metrics(metrics_registry(stores.catalog))
    assert content_type.startswith("text/plain")
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert by_label(samples, "livewitness_alerts_total", "outcome") == {
        "delivered": 0,
        "failed": 0,
        "pending": 0,
    }
    assert value(samples, "livewitness_transcription_backlog") == 0
    assert ("livewitness_transcription_realtime_factor", frozenset()) not in samples
    assert not by_label(samples, "livewitness_segments_recorded_total", "stream")


def test_openmetrics_is_served_when_asked_for(stores: Stores) -> None:
    SEARCH_LATENCY.observe(0.012)
    body, content_type = render_metrics(
        metrics_registry(stores.catalog), accept="application/openmetrics-text; version=1.0.0"
    )
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert b"livewitness_search_latency_seconds_bucket" in body


def test_an_unreadable_catalog_is_reported_not_raised(tmp_path: Path) -> None:
    """Scrapes keep working while the catalog is down: catalog_up says so."""
    from storage.catalog import Catalog

    path = tmp_path / "catalog.sqlite3"
    catalog = Catalog(f"sqlite:///{path}")
    try:
        catalog.engine.dispose()
        for leftover in tmp_path.glob("catalog.sqlite3*"):
            leftover.unlink()  # the next connection opens an empty database: no tables
        body, _ = render_metrics(metrics_registry(catalog))
    finally:
        catalog.close()
    text = body.decode()
    assert "livewitness_catalog_up 0.0" in text
    assert "livewitness_segments_recorded" not in text
    assert "process_resident_memory_bytes" in text
