"""Stream events in, sealed batches out: the one code path of every connector.

``POST /api/v1/streams/{name}/events``, ``livewitness events follow`` and ``livewitness
events import`` all hand what they read to :meth:`EventService.ingest_lines` (NDJSON
lines, WebSocket messages) or :meth:`EventService.ingest_values` (a JSON array). Each
event is checked (core/events.py), rate-limited per stream (connectors only), and stored
once by its id: a repeat is counted as a duplicate, another event under a used id is
refused (``conflict``). Refusals are counted per stream and reason in the catalog (the
metrics read them there).

:meth:`EventService.seal` writes what is stored into the stream's chain: events are
grouped in windows of ``events_batch_seconds`` of their own time (aligned to the epoch);
once a window has ended (plus ``events_seal_delay_seconds``) its events become one JSONL
batch, hashed and chained (``EvidenceChain.append_events``). A window holding more than
``events_batch_max`` events is sealed in parts as it fills. An event whose window was
sealed already goes into the next batch with its own time and ``late: true``; a sealed
batch is never written again. A stream not being recorded has its head signed after a
seal, so a stopped stream's chain always ends signed.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from core.errors import InvalidInputError, LiveWitnessError
from core.events import (
    GAP_KIND,
    MAX_TEXT_CHARS,
    EventLimits,
    EventRefused,
    StreamEvent,
    decode_event,
    parse_event,
)
from core.timeutil import iso, utc_now
from storage.blobs.protocol import sha256_bytes
from storage.chain import SealedBatch
from storage.models import EventRow
from storage.signing import FORMAT, canonical_bytes
from storage.stores import Stores

log = logging.getLogger(__name__)

#: A sealer that claimed events and died is replaced after this long.
STALE_CLAIM = timedelta(minutes=5)


@dataclass(frozen=True)
class LineOutcome:
    """An event that was not taken as new: where it was, and why."""

    line: int  # 1-based: the NDJSON line, the array element or the message
    id: str | None
    status: Literal["duplicate", "refused"]
    reason: str | None = None  # refused: one of core.events.REFUSAL_REASONS
    error: str | None = None  # refused: one line for the connector


@dataclass
class IngestReport:
    accepted: int = 0
    duplicate: int = 0
    refused: int = 0
    problems: list[LineOutcome] = field(default_factory=list)

    def add(self, other: IngestReport) -> None:
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        self.refused += other.refused
        self.problems.extend(other.problems)

    def refused_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for problem in self.problems:
            if problem.status == "refused" and problem.reason:
                counts[problem.reason] = counts.get(problem.reason, 0) + 1
        return counts


@dataclass
class StreamRates:
    """Events per second per stream (token buckets), kept by the process that takes
    them: a flood from one connector cannot crowd out the others."""

    _buckets: dict[int, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, stream_id: int, rate: float, burst: int) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(stream_id, (float(burst), now))
            tokens = min(float(burst), tokens + (now - then) * rate)
            if tokens < 1:
                self._buckets[stream_id] = (tokens, now)
                return False
            self._buckets[stream_id] = (tokens - 1, now)
            return True


def split_body(body: bytes) -> list[tuple[int, Any, bool]]:
    """A request body as (line number, value, decoded): a JSON array's elements, or
    NDJSON lines (undecoded; blank lines skipped). A body that starts as an array but is
    not one is refused whole: its elements cannot be told apart."""
    text = body.lstrip()
    if text.startswith(b"["):
        try:
            values = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError(
                f"the body starts with '[' but is not a JSON array: {exc}"
            ) from None
        if not isinstance(values, list):  # pragma: no cover - '[' starts an array
            raise InvalidInputError("the body is not a JSON array")
        return [(n, value, True) for n, value in enumerate(values, start=1)]
    return [(n, line, False) for n, line in enumerate(body.split(b"\n"), start=1) if line.strip()]


def _fields_of(body: str) -> dict[str, Any]:
    """A stored event's connector fields: what a repeat must match."""
    record: dict[str, Any] = json.loads(body)
    record.pop("received_at", None)
    return record


class EventService:
    """Ingestion, sealing and reading of one installation's stream events."""

    def __init__(self, stores: Stores, rates: StreamRates | None = None) -> None:
        self.stores = stores
        self.rates = rates or StreamRates()
        settings = stores.settings
        self.limits = EventLimits(
            max_bytes=settings.events_max_bytes,
            max_past=timedelta(days=settings.events_max_past_days),
            max_future=timedelta(seconds=settings.events_max_future_seconds),
        )

    # -- in ---------------------------------------------------------------------------
    def ingest_body(self, stream_id: int, body: bytes, *, limited: bool = True) -> IngestReport:
        return self._ingest(stream_id, split_body(body), limited)

    def ingest_lines(
        self, stream_id: int, lines: Iterable[tuple[int, bytes]], *, limited: bool = True
    ) -> IngestReport:
        return self._ingest(
            stream_id, [(n, line, False) for n, line in lines if line.strip()], limited
        )

    def ingest_values(
        self, stream_id: int, values: Sequence[Any], *, limited: bool = True
    ) -> IngestReport:
        return self._ingest(
            stream_id, [(n, v, True) for n, v in enumerate(values, start=1)], limited
        )

    def _ingest(
        self, stream_id: int, items: Sequence[tuple[int, Any, bool]], limited: bool
    ) -> IngestReport:
        report = IngestReport()
        now = utc_now()
        settings = self.stores.settings
        taken: list[tuple[int, StreamEvent, str]] = []
        for number, item, decoded in items:
            value: Any = item if decoded else None
            try:
                if not decoded:
                    value = decode_event(item, self.limits)
                event = parse_event(value, self.limits, now, sized=not decoded)
                if limited and not self.rates.take(
                    stream_id, settings.events_rate_per_second, settings.events_rate_burst
                ):
                    raise EventRefused(
                        "rate_limited",
                        f"event {event.id}: more than {settings.events_rate_per_second:g}"
                        " events per second for this stream; send it again later",
                    )
            except EventRefused as exc:
                event_id = value.get("id") if isinstance(value, dict) else None
                report.refused += 1
                report.problems.append(
                    LineOutcome(
                        number,
                        str(event_id) if isinstance(event_id, str | int) else None,
                        "refused",
                        exc.reason,
                        str(exc),
                    )
                )
                continue
            body = canonical_bytes(event.to_json(), FORMAT).decode()
            taken.append((number, event, body))
        self._store(stream_id, taken, report)
        refused = report.refused_by_reason()
        if refused:
            self.stores.catalog.count_refusals(stream_id, refused)
        return report

    def _store(
        self, stream_id: int, taken: list[tuple[int, StreamEvent, str]], report: IngestReport
    ) -> None:
        first: dict[str, str] = {}  # id -> body, the first of each id in this request
        rows = []
        for _number, event, body in taken:
            if event.id not in first:
                first[event.id] = body
                rows.append(
                    EventRow(
                        stream_id=stream_id,
                        event_id=event.id,
                        kind=event.kind,
                        at=event.at,
                        received_at=event.received_at,
                        body=body,
                        late=False,
                    )
                )
        stored = self.stores.catalog.add_events(stream_id, rows) if rows else {}
        seen: set[str] = set()
        for number, event, body in taken:
            earlier = stored.get(event.id) if event.id not in seen else first[event.id]
            seen.add(event.id)
            if earlier is None:
                report.accepted += 1
            elif _fields_of(earlier) == _fields_of(body):
                report.duplicate += 1
                report.problems.append(LineOutcome(number, event.id, "duplicate"))
            else:
                report.refused += 1
                report.problems.append(
                    LineOutcome(
                        number,
                        event.id,
                        "refused",
                        "conflict",
                        f"event {event.id}: this id is taken by another event of the stream",
                    )
                )

    def record_gap(self, stream_id: int, since: datetime, until: datetime, reason: str) -> None:
        """Note in the stream's events that a followed source was down (core/events.py,
        GAP_KIND): sealed and chained like any event."""
        event = StreamEvent(
            id=f"gap:{iso(since)}",
            kind=GAP_KIND,
            at=since,
            at_text=iso(since),
            received_at=utc_now(),
            text=reason[:MAX_TEXT_CHARS],
            until=until,
        )
        body = canonical_bytes(event.to_json(), FORMAT).decode()
        self._store(stream_id, [(0, event, body)], IngestReport())

    # -- sealed -----------------------------------------------------------------------
    def seal(
        self, stream_id: int, name: str, *, final: bool = False, now: datetime | None = None
    ) -> list[int]:
        """Seal the stream's closed windows (and busy or, when ``final``, all pending
        events) into chained batches; returns their entry indices."""
        catalog, settings = self.stores.catalog, self.stores.settings
        width = settings.events_batch_seconds
        moment = (now or utc_now()) - timedelta(seconds=settings.events_seal_delay_seconds)
        boundary = datetime.fromtimestamp(math.floor(moment.timestamp() / width) * width, tz=UTC)
        # Entries a crashed sealer stored but did not index are indexed first (marking
        # their events), so that only claims that never reached the chain are released.
        self.stores.chain.open_stream(name)
        catalog.release_stale_claims(stream_id, STALE_CLAIM)
        before = catalog.sealed_until(stream_id)
        window_end = boundary if before is None else max(before, boundary)
        chained: list[int] = []
        limit = settings.events_batch_max
        while True:  # the closed windows
            rows = catalog.claim_events(stream_id, _claim(), boundary, limit, before)
            if not rows:
                break
            chained.append(self._chain(stream_id, name, rows, window_end))
        while final or catalog.pending_event_count(stream_id) >= limit:  # busy, or asked
            rows = catalog.claim_events(stream_id, _claim(), None, limit, before)
            if not rows:
                break
            chained.append(self._chain(stream_id, name, rows, window_end))
        if chained and catalog.stream_by_id(stream_id).status != "recording":
            # No recorder will sign this head: a stopped stream's chain ends signed.
            self.stores.chain.sign_head(stream_id, name)
        return chained

    def _chain(
        self, stream_id: int, name: str, rows: Sequence[EventRow], window_end: datetime
    ) -> int:
        # A stored body is the event's canonical line already; a late one gains its mark.
        data = b"".join(
            (_late_line(row.body) if row.late else row.body.encode()) + b"\n" for row in rows
        )
        claim = rows[0].claim
        assert claim is not None  # claimed rows carry their claim
        batch = SealedBatch(
            data=data,
            sha256=sha256_bytes(data),
            count=len(rows),
            late=sum(1 for row in rows if row.late),
            first_at=min(row.at for row in rows),
            last_at=max(row.at for row in rows),
            window_end=window_end,
            batch=claim,
        )
        return self.stores.chain.append_events(stream_id, name, batch)

    def follow(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Seal every stream's closed windows as they close, until ``stop``."""
        while not stop.wait(interval):
            try:
                for stream_id in self.stores.catalog.streams_with_pending_events():
                    name = self.stores.catalog.stream_by_id(stream_id).name
                    self.seal(stream_id, name)
            except LiveWitnessError as exc:
                log.error("sealing stream events failed (tried again): %s", exc)
            except Exception:  # an unsupervised thread of the API: it must not die
                log.exception("sealing stream events failed (tried again)")

    # -- out --------------------------------------------------------------------------
    def events(
        self,
        stream_id: int,
        start: datetime | None = None,
        end: datetime | None = None,
        kinds: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[StreamEvent]:
        """A stream's events timed in [start, end), of ``kinds``, by time."""
        rows = self.stores.catalog.events_between(stream_id, start, end, kinds, limit)
        return [_event_of(row) for row in rows]


def _event_of(row: EventRow) -> StreamEvent:
    return replace(StreamEvent.from_json(json.loads(row.body)), late=row.late, batch=row.batch_idx)


def _late_line(body: str) -> bytes:
    return canonical_bytes({**json.loads(body), "late": True}, FORMAT)


def _claim() -> str:
    return secrets.token_hex(8)
