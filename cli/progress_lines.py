"""One line per unit of work for the long-running stages started on their own
(``transcribe --follow``, ``indexer``), so an operator sees them work without ``-v``.

Imported by those commands only (it imports the indexer)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from indexer.protocol import SearchIndex
from indexer.service import Indexer
from storage.stores import Stores

Say = Callable[[str], None]


def follow_transcripts(stores: Stores, say: Say, stop: threading.Event, poll: float = 0.5) -> None:
    """Say each transcript stored from now on (by any worker of the installation):
    stream, segment (and speech chunk), words and the first words heard."""
    catalog = stores.catalog
    known = catalog.transcript_keys(0)
    cursor = known[-1][0] if known else 0  # what was there before this start is not news
    while not stop.wait(poll):
        for row_id, stream_id, seq, part in catalog.transcript_keys(cursor):
            cursor = row_id
            row = next((t for t in catalog.transcripts(stream_id, [seq]) if t.part == part), None)
            if row is None:
                continue
            name = catalog.stream_by_id(stream_id).name
            chunk = f" chunk {part}" if part else ""
            if json.loads(row.body).get("provisional"):
                chunk += " (provisional)"
            text = row.text if len(row.text) <= 40 else row.text[:39] + "…"
            say(f"transcribed {name} segment {seq}{chunk}: {text or '(no speech)'}")


class ReportingIndexer(Indexer):
    """The indexer stage, saying each segment whose transcripts it indexes."""

    def __init__(self, stores: Stores, index: SearchIndex, say: Say) -> None:
        super().__init__(stores, index)
        self._say = say

    def index_pending(self, limit: int | None = None) -> int:
        before = set(self._indexed)
        done = super().index_pending(limit)
        fresh = sorted(self._indexed - before)
        for stream_id, seq in sorted({(s, q) for s, q, _part in fresh}):
            self._say(f"indexed {self.stores.catalog.stream_by_id(stream_id).name} segment {seq}")
        return done
