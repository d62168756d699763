"""Early warning: a streamer whose banned-word rate jumps (webhook event ``compliance.spike``).

The rule, per streamer (every stream that names them; a stream without a streamer is not
checked): over the last hour, hits per hour on air (recorded segment time) against the
same rate over ``spike_baseline_days`` before that hour. It is a spike when the last hour
holds at least ``spike_min_hits`` hits and its rate is above ``spike_multiple`` times the
baseline's (a streamer with no hits, or no recording, in the baseline is measured against
zero, so then the minimum count alone decides). One spike per streamer per hour window: a
spike is not raised again while the window of the last one (the hour before it) overlaps
the new one. Spikes are alerts (the ``alerts`` table, kind ``compliance.spike``, term the
streamer) queued through the one webhook outbox.

The indexer checks a streamer after it stores new hits of a live stream of theirs
(``indexer/service.py``); ``livewitness compliance spikes`` checks every streamer once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from compliance.alerts import SPIKE_EVENT, moment_link, payload_body
from core.timeutil import iso
from storage.models import Alert, BannedHit, Stream
from storage.stores import Stores

WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Rate:
    """Hits in a time range and the time on air in it."""

    since: datetime
    until: datetime
    hits: int
    recorded_seconds: float

    @property
    def per_hour(self) -> float:
        """Hits per hour on air (per hour of the range when nothing was recorded)."""
        seconds = self.recorded_seconds or (self.until - self.since).total_seconds()
        return self.hits * 3600 / seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "since": iso(self.since),
            "until": iso(self.until),
            "hits": self.hits,
            "recorded_seconds": round(self.recorded_seconds, 1),
            "hits_per_hour": round(self.per_hour, 2),
        }


@dataclass(frozen=True)
class SpikeCheck:
    """One streamer's last hour against their baseline, and whether it is a spike."""

    streamer: str
    at: datetime
    recent: Rate
    baseline: Rate
    spike: bool
    hits: tuple[BannedHit, ...]  # the last hour's, oldest first


def check_streamer(
    stores: Stores, streamer: str, streams: Collection[Stream], now: datetime
) -> SpikeCheck:
    settings, catalog = stores.settings, stores.catalog
    ids = [s.id for s in streams]
    start, base_start = now - WINDOW, now - WINDOW - timedelta(days=settings.spike_baseline_days)
    hits = tuple(h for h in catalog.banned_hits(ids, start, now) if h.at > start)
    recent = Rate(start, now, len(hits), sum(catalog.recorded_seconds(start, now, ids).values()))
    baseline = Rate(
        base_start,
        start,
        sum(n for *_, n in catalog.banned_term_counts(base_start, start, ids)),
        sum(catalog.recorded_seconds(base_start, start, ids).values()),
    )
    base_rate = baseline.per_hour if baseline.recorded_seconds else 0.0
    spike = (
        recent.hits >= settings.spike_min_hits
        and recent.per_hour > settings.spike_multiple * base_rate
    )
    return SpikeCheck(streamer, now, recent, baseline, spike, hits)


def raise_spikes(
    stores: Stores, now: datetime, streamers: Collection[str] | None = None
) -> list[SpikeCheck]:
    """Check every streamer (or those named) at ``now`` and queue a ``compliance.spike``
    event for each spike not raised in this hour window already; returns those raised."""
    catalog = stores.catalog
    by_streamer: dict[str, list[Stream]] = {}
    for stream in catalog.list_streams():
        if stream.streamer and (streamers is None or stream.streamer in streamers):
            by_streamer.setdefault(stream.streamer, []).append(stream)
    raised = []
    for streamer, streams in sorted(by_streamer.items()):
        if catalog.alerted_since(SPIKE_EVENT, streamer, now - WINDOW):
            continue  # this hour window has had its spike
        check = check_streamer(stores, streamer, streams, now)
        if not check.spike:
            continue
        names = {s.id: s.name for s in streams}
        busiest, _ = Counter(h.stream_id for h in check.hits).most_common(1)[0]
        last = [h for h in check.hits if h.stream_id == busiest][-1]
        payload = spike_payload(stores, check, names)
        catalog.add_alert(
            Alert(
                stream_id=busiest,
                kind=SPIKE_EVENT,
                term=streamer,
                offset=last.offset,  # the moment the busiest stream's link opens
                payload=payload_body(payload).decode(),
                created_at=now,
            ),
            streamer,
        )
        raised.append(check)
    return raised


def spike_payload(stores: Stores, check: SpikeCheck, names: dict[int, str]) -> dict[str, Any]:
    settings = stores.settings
    base = check.baseline.per_hour if check.baseline.recorded_seconds else 0.0
    per_stream = Counter(h.stream_id for h in check.hits)
    last_of = {h.stream_id: h for h in check.hits}  # oldest first: the last one wins
    terms = Counter((h.term, h.category, h.severity) for h in check.hits)
    return {
        "event": SPIKE_EVENT,
        "streamer": check.streamer,
        "at": iso(check.at),
        "window": check.recent.as_json(),
        "baseline": check.baseline.as_json(),
        "ratio": round(check.recent.per_hour / base, 2) if base else None,
        "rule": {
            "multiple": settings.spike_multiple,
            "min_hits": settings.spike_min_hits,
            "baseline_days": settings.spike_baseline_days,
        },
        "by_category": dict(Counter(h.category for h in check.hits).most_common()),
        "top_terms": [
            {"term": term, "category": category, "severity": severity, "count": n}
            for (term, category, severity), n in terms.most_common(5)
        ],
        "streams": [
            {
                "stream": names[sid],
                "hits": n,
                "link": moment_link(settings, names[sid], last_of[sid].offset),
            }
            for sid, n in per_stream.most_common()
        ],
    }
