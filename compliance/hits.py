"""Banned-word hits as they leave the matcher and the catalog: the fields every consumer
(the search index, the catalog, alerts and reports) keeps, and a stored hit as JSON."""

from __future__ import annotations

import json
from typing import Any

from core.timeutil import iso
from storage.models import BannedHit

# What a banned-word hit says, from the matcher to the index, the catalog and alerts.
BANNED_FIELDS = ("term", "category", "severity", "source", "heard", "match")


def banned_hit_json(hit: BannedHit) -> dict[str, Any]:
    """A stored hit for alerts and reports (stream and link are the caller's)."""
    return {
        **{name: getattr(hit, name) for name in BANNED_FIELDS},
        "at": iso(hit.at),
        "offset": round(hit.offset, 3),
        "end_offset": round(hit.end_offset, 3),
        "text": hit.text,
        "words": json.loads(hit.words),
        "lexicon_version": hit.lexicon_version,
    }
