"""Compliance reports: banned-word hits of a stream or a streamer over a time range.

One report object serves the CLI and the API: counts by category, by severity and by
both, and every hit with its time, the words heard and a link to the moment. Hits are
said (``kind`` speech), written in the chat or shown on screen (compliance/text_hits.py).
CSV has one row per hit (spreadsheets and case systems); JSON has the counts as well.
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
from compliance.text_hits import text_banned_hits
from core.errors import InvalidInputError, NotFoundError
from core.timeutil import iso, utc_now
from storage.stores import Stores

CSV_FIELDS = (
    "stream",
    "kind",
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
            "kind": "speech",
            **banned_hit_json(h),
            "link": moment_link(stores.settings, names[h.stream_id], h.offset),
        }
        for h in hits
    ]
    written = text_banned_hits(stores, streams, since, until)
    rows = sorted(
        rows
        + [w | {"link": moment_link(stores.settings, w["stream"], w["offset"])} for w in written],
        key=lambda row: (row["at"], row["stream"]),
    )
    by_pair = Counter((r["category"], r["severity"]) for r in rows)
    return {
        "stream": stream,
        "streamer": streamer,
        "streams": sorted(names.values()),
        "since": iso(since) if since else None,
        "until": iso(until) if until else None,
        "generated_at": iso(utc_now()),
        "lexicon_version": load_lexicon(stores.settings.lexicon_path).version,
        "total": len(rows),
        "by_category": dict(sorted(Counter(r["category"] for r in rows).items())),
        "by_kind": dict(sorted(Counter(r["kind"] for r in rows).items())),
        "by_severity": dict(
            sorted(
                Counter(r["severity"] for r in rows).items(),
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
