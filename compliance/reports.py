"""Compliance reports: banned-word hits of a stream or a streamer over a time range.

One report object serves the CLI and the API: counts by category, by severity and by
both, and every hit with its time, the words heard and a link to the moment. CSV has one
row per hit (spreadsheets and case systems); JSON has the counts as well.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import datetime
from typing import Any

from compliance.alerts import moment_link
from compliance.hits import banned_hit_json
from compliance.matcher import SEVERITIES, load_lexicon
from core.errors import InvalidInputError, NotFoundError
from core.timeutil import iso, utc_now
from storage.stores import Stores

CSV_FIELDS = (
    "stream",
    "at",
    "offset",
    "end_offset",
    "term",
    "category",
    "severity",
    "match",
    "heard",
    "text",
    "source",
    "lexicon_version",
    "link",
)


def compliance_report(
    stores: Stores,
    *,
    stream: str | None = None,
    streamer: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    if bool(stream) == bool(streamer):
        raise InvalidInputError("a report is for one stream or one streamer: give one of them")
    if since and until and since > until:
        raise InvalidInputError("the time range ends before it starts")
    if stream:
        streams = [stores.catalog.get_stream(stream)]  # NotFoundError names it
    else:
        streams = [s for s in stores.catalog.list_streams() if s.streamer == streamer]
        if not streams:
            raise NotFoundError(f"no stream of streamer {streamer!r}")
    names = {s.id: s.name for s in streams}
    hits = stores.catalog.banned_hits(list(names), since, until)
    severity_rank: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}
    rows = [
        {
            "stream": names[h.stream_id],
            **banned_hit_json(h),
            "link": moment_link(stores.settings, names[h.stream_id], h.offset),
        }
        for h in hits
    ]
    by_pair = Counter((h.category, h.severity) for h in hits)
    return {
        "stream": stream,
        "streamer": streamer,
        "streams": sorted(names.values()),
        "since": iso(since) if since else None,
        "until": iso(until) if until else None,
        "generated_at": iso(utc_now()),
        "lexicon_version": load_lexicon(stores.settings.lexicon_path).version,
        "total": len(hits),
        "by_category": dict(sorted(Counter(h.category for h in hits).items())),
        "by_severity": dict(
            sorted(
                Counter(h.severity for h in hits).items(),
                key=lambda kv: severity_rank.get(kv[0], 99),
            )
        ),
        "by_category_and_severity": [
            {"category": c, "severity": s, "count": n} for (c, s), n in sorted(by_pair.items())
        ],
        "hits": rows,
    }


def report_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in report["hits"]:
        writer.writerow(row)
    return out.getvalue()
