"""The compliance overview: banned-word hits per streamer and per stream over a time
range, by category and time bucket, the terms heard most, and claim counts.

Counted in the catalog (GROUP BY queries, never the hits themselves); claims live in the
search index only, so they are counted through a :class:`ClaimCounter` the caller gives
(``indexer/claim_counts.py`` counts through the SearchIndex Protocol, any engine).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from compliance.matcher import load_lexicon
from core.errors import InvalidInputError
from core.timeutil import iso, utc_now
from storage.stores import Stores

Bucket = Literal["auto", "hour", "day", "week"]
BUCKET_SECONDS = {"hour": 3600, "day": 86400, "week": 7 * 86400}
MAX_BUCKETS = 1000  # a chart a person can read; a longer range takes a larger bucket
DEFAULT_RANGE = timedelta(days=7)
TOP_TERMS = 10
TOP_TERMS_PER_STREAM = 5


@dataclass(frozen=True)
class ClaimTally:
    """Utterances with a claim of each type (types with none are left out)."""

    counts: dict[str, int] = field(default_factory=dict)
    at_least: bool = False  # the engine stopped counting: the counts are lower bounds


class ClaimCounter(Protocol):
    def claim_types(self) -> Sequence[tuple[str, str]]:
        """(name, label) of every claim type, in the taxonomy's order."""
        ...

    def count(self, stream: str, since: datetime, until: datetime) -> ClaimTally: ...


def choose_bucket(since: datetime, until: datetime, bucket: Bucket) -> str:
    """``auto``: hours up to two days, days up to 90 days, weeks beyond."""
    if bucket != "auto":
        return bucket
    span = until - since
    if span <= timedelta(days=2):
        return "hour"
    return "day" if span <= timedelta(days=90) else "week"


def compliance_overview(
    stores: Stores,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    bucket: Bucket = "auto",
    claims: ClaimCounter | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Hits said in [since, until) (default: the 7 days before now), bucketed from
    ``since``: bucket n holds [since + n * width, since + (n + 1) * width)."""
    if bucket not in ("auto", *BUCKET_SECONDS):
        raise InvalidInputError("bucket must be auto, hour, day or week")
    until = until or now or utc_now()
    try:
        since = since or until - DEFAULT_RANGE
    except OverflowError:  # until in the first week of year 1
        raise InvalidInputError("the time range starts before the year 1") from None
    if since >= until:
        raise InvalidInputError("the time range ends before it starts")
    unit = choose_bucket(since, until, bucket)
    width = BUCKET_SECONDS[unit]
    count = math.ceil((until - since).total_seconds() / width)
    if count > MAX_BUCKETS:
        raise InvalidInputError(
            f"{count} {unit} buckets: at most {MAX_BUCKETS}; choose a larger bucket or a"
            " shorter range"
        )
    catalog = stores.catalog
    streams = {s.id: s for s in catalog.list_streams()}
    buckets = catalog.banned_hit_buckets(since, until, width)
    terms = catalog.banned_term_counts(since, until)
    recorded = catalog.recorded_seconds(since, until)
    lexicon = load_lexicon(stores.settings.lexicon_path)
    seen = {category for _, category, _, _ in buckets}
    categories = [c for c in lexicon.categories if c in seen] + sorted(
        seen - set(lexicon.categories)
    )

    series: dict[int, dict[str, list[int]]] = defaultdict(dict)
    for sid, category, n, hits in buckets:
        line = series[sid].setdefault(category, [0] * count)
        line[min(max(n, 0), count - 1)] += hits
    term_rows: dict[int, Counter[tuple[str, str, str]]] = defaultdict(Counter)
    for sid, term, category, severity, hits in terms:
        term_rows[sid][(term, category, severity)] += hits

    active = sorted(set(series) | {sid for sid, seconds in recorded.items() if seconds > 0})
    tallies = {
        sid: claims.count(streams[sid].name, since, until) if claims else ClaimTally()
        for sid in active
    }
    stream_rows = [
        _summary(
            {"stream": streams[sid].name, "streamer": streams[sid].streamer},
            series.get(sid, {}),
            term_rows[sid],
            recorded.get(sid, 0.0),
            [tallies[sid]],
            TOP_TERMS_PER_STREAM,
        )
        for sid in active
    ]
    by_streamer: dict[str | None, list[int]] = defaultdict(list)
    for sid in active:
        by_streamer[streams[sid].streamer].append(sid)
    streamer_rows = []
    for streamer, sids in by_streamer.items():
        merged: dict[str, list[int]] = {}
        merged_terms: Counter[tuple[str, str, str]] = Counter()
        for sid in sids:
            for category, line in series.get(sid, {}).items():
                total = merged.setdefault(category, [0] * count)
                merged[category] = [a + b for a, b in zip(total, line, strict=True)]
            merged_terms.update(term_rows[sid])
        streamer_rows.append(
            _summary(
                {"streamer": streamer, "streams": sorted(streams[s].name for s in sids)},
                merged,
                merged_terms,
                sum(recorded.get(s, 0.0) for s in sids),
                [tallies[s] for s in sids],
                TOP_TERMS_PER_STREAM,
            )
        )
    all_terms: Counter[tuple[str, str, str]] = Counter()
    for rows in term_rows.values():
        all_terms.update(rows)
    claim_totals: Counter[str] = Counter()
    for tally in tallies.values():
        claim_totals.update(tally.counts)
    return {
        "since": iso(since),
        "until": iso(until),
        "bucket": unit,
        "bucket_seconds": width,
        "buckets": [iso(since + timedelta(seconds=width * n)) for n in range(count)],
        "generated_at": iso(utc_now()),
        "lexicon_version": lexicon.version,
        "categories": categories,
        "total": sum(hits for _, _, _, hits in buckets),
        "by_category": _category_totals(buckets),
        "top_terms": _top(all_terms, TOP_TERMS),
        "claim_types": [
            {"name": name, "label": label}
            for name, label in (claims.claim_types() if claims else [])
        ],
        "claims": dict(claim_totals),
        "claims_at_least": any(t.at_least for t in tallies.values()),
        "streamers": sorted(streamer_rows, key=_most_hits_first),
        "streams": sorted(stream_rows, key=_most_hits_first),
    }


def _most_hits_first(row: dict[str, Any]) -> tuple[int, str]:
    return -row["total"], str(row.get("stream") or row.get("streamer") or "")


def _category_totals(buckets: list[tuple[int, str, int, int]]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for _, category, _, hits in buckets:
        totals[category] += hits
    return dict(sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])))


def _top(terms: Counter[tuple[str, str, str]], limit: int) -> list[dict[str, Any]]:
    ranked = sorted(terms.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [
        {"term": term, "category": category, "severity": severity, "count": hits}
        for (term, category, severity), hits in ranked
    ]


def _summary(
    who: dict[str, Any],
    series: dict[str, list[int]],
    terms: Counter[tuple[str, str, str]],
    recorded_seconds: float,
    tallies: list[ClaimTally],
    top: int,
) -> dict[str, Any]:
    """One streamer's or stream's row: totals, series, top terms, rate and claims."""
    by_category = {c: sum(line) for c, line in series.items()}
    total = sum(by_category.values())
    claims: Counter[str] = Counter()
    for tally in tallies:
        claims.update(tally.counts)
    return {
        **who,
        "total": total,
        "by_category": dict(sorted(by_category.items(), key=lambda kv: (-kv[1], kv[0]))),
        "series": series,
        "top_terms": _top(terms, top),
        "recorded_seconds": round(recorded_seconds, 1),
        # Per hour on air, not per hour of the range: a streamer live one hour a day is
        # compared by what they say while live.
        "hits_per_hour": round(total / (recorded_seconds / 3600), 2) if recorded_seconds else None,
        "claims": dict(claims),
        "claims_total": sum(claims.values()),
    }
