"""Banned terms written, not said: in the chat and in on-screen text (a banned term on a
price sticker is a violation too). Found with the same matcher as speech, at read time
from the stored events and screen text (both the record), each hit marked with its kind.

Speech hits are stored (``banned_hits``, rebuilt by ``compliance rescan``); these are
worked out when asked for, so a lexicon change applies to them at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from compliance.matcher import TermMatch, load_lexicon, matcher_for
from core.events import StreamEvent
from core.timeutil import iso
from storage.models import Stream
from storage.stores import Stores

TEXT_KINDS = ("chat", "screen")


def text_banned_hits(
    stores: Stores,
    streams: Sequence[Stream],
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Banned terms in the chat and on screen of ``streams`` in [since, until], by time,
    as the report shows a hit (``kind`` says where; ``offset`` from the stream's start)."""
    lexicon = load_lexicon(stores.settings.lexicon_path)
    matcher = matcher_for(lexicon)
    catalog = stores.catalog
    found: list[dict[str, Any]] = []
    for stream in streams:
        first = catalog.first_segment(stream.id)
        origin = first.starts_at if first is not None else None
        rows = catalog.events_between(stream.id, since, until, ["chat"])
        for row in rows:
            event = StreamEvent.from_json(json.loads(row.body))
            offset = (event.at - origin).total_seconds() if origin else 0.0
            text = event.text or ""
            for hit in matcher.find(text):
                found.append(
                    _row(stream, "chat", hit, text, event.at, offset, offset, lexicon.version)
                    | {"user": event.user, "event": event.id}
                )
        for line in catalog.screen_text(stream.id, stream.name, since, until):
            for hit in matcher.find(line.text):
                found.append(
                    _row(
                        stream,
                        "screen",
                        hit,
                        line.text,
                        line.first_seen_at,
                        line.first_offset,
                        line.last_offset,
                        lexicon.version,
                    )
                    | {"keyframe": line.keyframe_key, "last_seen": iso(line.last_seen_at)}
                )
    return sorted(found, key=lambda h: (h["at"], h["stream"]))


def _row(
    stream: Stream,
    kind: str,
    hit: TermMatch,
    text: str,
    at: datetime,
    offset: float,
    end_offset: float,
    version: str,
) -> dict[str, Any]:
    return {
        "stream": stream.name,
        "kind": kind,
        "term": hit.term,
        "category": hit.category,
        "severity": hit.severity,
        "source": hit.source,
        "heard": hit.heard,
        "match": hit.match,
        "at": iso(at),
        "offset": round(offset, 3),
        "end_offset": round(end_offset, 3),
        "text": text,
        "words": [],
        "lexicon_version": version,
    }
