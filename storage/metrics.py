"""Prometheus metrics: what the catalog says, plus what only one process can see.

Two kinds of numbers, kept apart on purpose:

- **Catalog metrics** (:class:`CatalogCollector`) are read from the catalog at scrape
  time with a few aggregate queries (one GROUP BY each, no rows loaded). Every stage
  shares the catalog, so these are right whichever process is scraped, and stay right
  across restarts and replicas: nothing is counted in memory that a crash could lose.
  The price is that every scraped process reports the same catalog series; aggregate
  them with ``max`` (docs/deploy.md).
- **In-process metrics** are observations only the process doing the work can make:
  how long a transcript waited before it was searchable (:data:`INDEX_LAG`, observed
  by the indexer), how long searches take (:data:`SEARCH_LATENCY`, observed by the
  API) and the RFC 3161 tokens a stamper got or failed to get (:data:`TIMESTAMPS_STORED`,
  :data:`TIMESTAMP_FAILURES`). They live in module globals, like every prometheus_client
  metric, but in no registry of their own: :func:`metrics_registry` puts them, the
  catalog collector and the process collectors (CPU, memory, GC) into a fresh registry
  per server.

A stage process exposes its registry with :func:`serve_metrics` (a small HTTP server on
a thread); the API serves the same text on its own metrics route (``/api/v1/metrics``)
through :func:`render_metrics`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    start_http_server,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from core.jobs import TRANSCRIPTION_JOBS
from core.timeutil import utc_now
from storage.catalog import WAITING, Catalog, StreamSummary
from storage.stages import STAGE_ERRORS, STAGE_RESTARTS, STAGES

log = logging.getLogger(__name__)

#: How many of the latest finished transcription jobs the realtime factor averages over:
#: enough to smooth one odd segment, few enough to show a slowdown within minutes.
REALTIME_FACTOR_JOBS = 50

#: Every status a delivery can have is always reported, so a dashboard's "failed" line
#: exists (at 0) before the first failure.
ALERT_OUTCOMES = ("pending", "delivered", "failed")

INDEX_LAG = Histogram(
    "livewitness_transcript_index_lag_seconds",
    "Seconds from a transcript's arrival in the catalog to its utterances being searchable.",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=None,
)

SEARCH_LATENCY = Histogram(
    "livewitness_search_latency_seconds",
    "Seconds the search index took to answer one search request.",
    registry=None,
)

TIMESTAMPS_STORED = Counter(
    "livewitness_timestamps_stored",
    "RFC 3161 time-stamp tokens this process got and stored, by TSA.",
    ["tsa"],
    registry=None,
)

TIMESTAMP_FAILURES = Counter(
    "livewitness_timestamp_failures",
    "Requests to a time-stamping authority that gave no usable token, by TSA and reason"
    " (unreachable, http, garbage, refused, mismatch, untrusted); the stamper retries.",
    ["tsa", "reason"],
    registry=None,
)


class LatestIndexLag(Collector):
    """``livewitness_index_lag_seconds``: the lag of the transcript indexed last.

    A collector rather than a Gauge so that only a process that has indexed something
    reports it: a recorder saying "index lag 0" would be a false all-clear.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: float | None = None

    def set(self, seconds: float) -> None:
        with self._lock:
            self._seconds = seconds

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            seconds = self._seconds
        if seconds is not None:
            gauge = GaugeMetricFamily(
                "livewitness_index_lag_seconds",
                "Index lag of the transcript this process indexed last.",
            )
            gauge.add_metric([], seconds)
            yield gauge


LATEST_INDEX_LAG = LatestIndexLag()


def observe_index_lag(transcript_created_at: datetime) -> None:
    """Record that a transcript stored at ``transcript_created_at`` is searchable now.

    The transcript's time comes from the transcriber's clock and now from the indexer's,
    so a skew between hosts can make the difference negative: counted as 0.
    """
    seconds = max(0.0, (utc_now() - transcript_created_at).total_seconds())
    INDEX_LAG.observe(seconds)
    LATEST_INDEX_LAG.set(seconds)


@dataclass
class CatalogFamilies:
    """The catalog's metric families for one scrape, filled by :class:`CatalogCollector`."""

    segments: CounterMetricFamily = field(
        default_factory=lambda: CounterMetricFamily(
            "livewitness_segments_recorded",
            "Segments recorded, hashed, chained and stored.",
            labels=["stream"],
        )
    )
    gaps: CounterMetricFamily = field(
        default_factory=lambda: CounterMetricFamily(
            "livewitness_gaps",
            "Gap entries in the hash chain: time the source was not recorded.",
            labels=["stream"],
        )
    )
    recorded: CounterMetricFamily = field(
        default_factory=lambda: CounterMetricFamily(
            "livewitness_recorded_seconds",
            "Seconds of stream recorded (sum of the segments' durations).",
            labels=["stream"],
        )
    )
    backlog: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "livewitness_transcription_backlog",
            "Transcription jobs waiting or running (failed ones are in"
            ' livewitness_transcription_jobs{status="failed"}).',
        )
    )
    jobs: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "livewitness_transcription_jobs", "Transcription jobs by status.", labels=["status"]
        )
    )
    realtime_factor: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "livewitness_transcription_realtime_factor",
            f"Seconds of audio transcribed per second of work, over the last"
            f" {REALTIME_FACTOR_JOBS} finished jobs; below 1 a worker falls behind a live"
            f" stream.",
        )
    )
    alerts: CounterMetricFamily = field(
        default_factory=lambda: CounterMetricFamily(
            "livewitness_alerts",
            "Webhook alert deliveries by outcome: delivered, failed (given up), pending"
            " (still being tried; this one falls as deliveries settle).",
            labels=["outcome"],
        )
    )
    banned_hits: CounterMetricFamily = field(
        default_factory=lambda: CounterMetricFamily(
            "livewitness_banned_hits",
            "Banned advertising terms heard, by lexicon category (a rescan with a changed"
            " lexicon can lower it).",
            labels=["category"],
        )
    )
    streams: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "livewitness_streams", "Streams by status.", labels=["status"]
        )
    )
    events: CounterMetricFamily = field(
        default_factory=lambda: CounterMetricFamily(
            "livewitness_stream_events",
            "Stream events taken (chat, product cards, orders, notices; docs/events.md).",
            labels=["stream"],
        )
    )
    events_refused: CounterMetricFamily = field(
        default_factory=lambda: CounterMetricFamily(
            "livewitness_stream_events_refused",
            "Stream events refused, by reason (malformed, too_large, invalid, unknown_kind,"
            " too_old, in_future, rate_limited, conflict).",
            labels=["stream", "reason"],
        )
    )

    def all(self) -> list[Metric]:
        return [getattr(self, f.name) for f in fields(self)]


def catalog_up(up: bool) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(
        "livewitness_catalog_up", "1 when the catalog answered this scrape's queries."
    )
    gauge.add_metric([], 1 if up else 0)
    return gauge


class CatalogCollector(Collector):
    """Counts read from the shared catalog at each scrape.

    A catalog that cannot be read does not fail the scrape (that would also hide the
    process metrics): ``livewitness_catalog_up`` drops to 0 and the catalog series are
    left out until it answers again.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def describe(self) -> Iterable[Metric]:
        # Names only, so a registry can refuse a clash without querying the catalog.
        return [catalog_up(True), *CatalogFamilies().all()]

    def collect(self) -> Iterable[Metric]:
        try:
            families = self._read()
        except SQLAlchemyError as exc:
            log.warning("metrics: cannot read the catalog: %s", exc)
            return [catalog_up(False)]
        return [catalog_up(True), *families.all()]

    def _read(self) -> CatalogFamilies:
        catalog, out = self.catalog, CatalogFamilies()
        summaries = catalog.stream_summaries(TRANSCRIPTION_JOBS)
        names = {stream.id: stream.name for stream in catalog.list_streams()}
        for stream_id, name in sorted(names.items(), key=lambda item: item[1]):
            summary = summaries.get(stream_id, StreamSummary())
            out.segments.add_metric([name], summary.segments)
            out.recorded.add_metric([name], summary.seconds)
            out.gaps.add_metric([name], summary.gaps)
        by_status = catalog.job_status_counts(TRANSCRIPTION_JOBS)
        waiting = sum(n for status, n in by_status.items() if status in WAITING)
        out.backlog.add_metric([], waiting)  # as Catalog.backlog counts it
        for status, count in sorted(by_status.items()):
            out.jobs.add_metric([status], count)
        timings = catalog.recent_job_timings(TRANSCRIPTION_JOBS, REALTIME_FACTOR_JOBS)
        processing = sum(seconds for _, seconds in timings)
        if processing > 0:  # no finished job yet: no value rather than a made-up one
            # A ratio of sums, not a mean of ratios: one short segment cannot swing it.
            out.realtime_factor.add_metric([], sum(audio for audio, _ in timings) / processing)
        outcomes = catalog.alert_delivery_counts()
        for outcome in sorted({*ALERT_OUTCOMES, *outcomes}):
            out.alerts.add_metric([outcome], outcomes.get(outcome, 0))
        for category, count in sorted(catalog.banned_hit_counts().items()):
            out.banned_hits.add_metric([category], count)
        for status, count in sorted(catalog.stream_status_counts().items()):
            out.streams.add_metric([status], count)
        for stream_id, count in sorted(catalog.event_counts().items()):
            out.events.add_metric([names.get(stream_id, str(stream_id))], count)
        for stream_id, reason, count in sorted(catalog.event_refusals()):
            out.events_refused.add_metric([names.get(stream_id, str(stream_id)), reason], count)
        return out


def metrics_registry(catalog: Catalog) -> CollectorRegistry:
    """A registry with the catalog metrics, this process's own metrics and the standard
    process collectors (CPU, memory, open files, GC)."""
    registry = CollectorRegistry()
    registry.register(CatalogCollector(catalog))
    for collector in (
        INDEX_LAG,
        LATEST_INDEX_LAG,
        SEARCH_LATENCY,
        TIMESTAMPS_STORED,
        TIMESTAMP_FAILURES,
        STAGES,
        STAGE_RESTARTS,
        STAGE_ERRORS,
    ):
        registry.register(collector)
    for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(standard)
    return registry


def serve_metrics(catalog: Catalog, port: int, host: str = "127.0.0.1") -> WSGIServer:
    """Serve ``/metrics`` on a daemon thread; port 0 takes a free one (``server_port``).

    ``host`` stays on loopback unless asked: in a container, pass ``0.0.0.0`` so that
    Prometheus can reach it. Stop with ``shutdown()`` then ``server_close()``.
    """
    server, _thread = start_http_server(port, addr=host, registry=metrics_registry(catalog))
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    return server


def render_metrics(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """The body and content type for a ``/metrics`` response: the Prometheus text format,
    or OpenMetrics when the request's ``Accept`` header asks for it."""
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type
