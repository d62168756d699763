"""Keep the search index in step with the stored transcripts.

The indexer follows the catalog's transcripts (near real time: a transcript is
searchable at the next poll) and can rebuild the whole index from them, since stored
transcripts are the system of record. Which transcripts are indexed is remembered in the
index's own directory; replaying one is harmless (deterministic document ids).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import lru_cache
from typing import Any

from compliance.hits import banned_hit_json
from compliance.matcher import BannedWordMatcher, Lexicon, load_lexicon
from core.timeutil import parse_iso, utc_now
from core.transcript import SegmentTranscript, carried_words, indexed_until
from indexer.documents import (
    FuzzyMatching,
    ProductFocus,
    UtteranceDoc,
    last_named_product,
    utterance_docs,
)
from indexer.factory import indexed_state_path
from indexer.protocol import SearchIndex
from storage.catalog import TRANSCRIPTS_STORED
from storage.metrics import observe_index_lag
from storage.models import Alert, BannedHit, Product, Stream, Transcript
from storage.stores import Stores


@lru_cache(maxsize=4)
def matcher_for(lexicon: Lexicon) -> BannedWordMatcher:
    """One matcher per lexicon version in use (building one takes a moment)."""
    return BannedWordMatcher(lexicon)


def banned_row(doc: UtteranceDoc, banned: dict[str, Any], lexicon_version: str) -> BannedHit:
    """A banned-word hit of an utterance document as the catalog stores it."""
    return BannedHit(
        utterance_id=doc.id,
        term=banned["term"],
        category=banned["category"],
        severity=banned["severity"],
        source=banned["source"],
        heard=banned["heard"],
        match=banned["match"],
        at=parse_iso(doc.start) + timedelta(seconds=banned["offset"] - doc.offset),
        offset=banned["offset"],
        end_offset=banned["end_offset"],
        text=doc.text,
        words=json.dumps(banned["words"], ensure_ascii=False),
        lexicon_version=lexicon_version,
    )


class Indexer:
    def __init__(self, stores: Stores, index: SearchIndex) -> None:
        self.stores = stores
        self.index = index
        self._state_path = indexed_state_path(stores.settings)
        # Kept on this host whichever backend holds the index; only the embedded engine
        # creates this directory itself.
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        self._indexed: set[tuple[int, int]] = self._load_state()
        if not self._state_path.exists():
            # Written at once: the api checks for it to tell that an indexer writes the
            # embedded index in this data directory (cli/placement.py).
            self._save_state()
        self._cursor = 0  # the last transcript id looked at (a fresh process reads all once)
        settings = stores.settings
        self._fuzzy = FuzzyMatching.of(
            settings.fuzzy_mention_min_syllables, settings.southern_confusions
        )
        # The product each transcript names last (None: none), for claims that name none.
        self._named: dict[tuple[int, int], ProductFocus | None] = {}
        self._focus_products: dict[int, tuple[tuple[str, str], ...]] = {}
        self.behind = 0  # transcripts left waiting by the last index_pending(limit)

    def _load_state(self) -> set[tuple[int, int]]:
        try:
            pairs = json.loads(self._state_path.read_text())
            return {(int(a), int(b)) for a, b in pairs}
        except (FileNotFoundError, ValueError):
            return set()

    def _save_state(self) -> None:
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(self._indexed)))
        tmp.replace(self._state_path)

    def index_pending(self, limit: int | None = None) -> int:
        """Index every stored transcript not yet indexed, or the first ``limit`` of them;
        returns how many, and leaves how many are still waiting in ``behind``. Only the
        transcripts stored since the last call are looked at (and their neighbours,
        for the boundary handover), so a poll costs the same at any catalog size."""
        catalog = self.stores.catalog
        fresh = catalog.transcript_keys(self._cursor)
        todo: dict[int, set[int]] = {}
        waiting = 0
        for _id, stream_id, seq in fresh:
            if (stream_id, seq) not in self._indexed:
                waiting += 1
                if limit is None or waiting <= limit:
                    todo.setdefault(stream_id, set()).add(seq)
        self.behind = waiting - min(waiting, limit) if limit is not None else 0
        done = 0
        for stream_id, seqs in sorted(todo.items()):
            stream = catalog.stream_by_id(stream_id)
            near = {n for seq in seqs for n in range(seq - 2, seq + 3)}
            by_seq = {t.segment_seq: t for t in catalog.transcripts(stream_id, near)}
            for seq in sorted(seqs):
                self._index_one(stream, by_seq[seq], by_seq)
                done += 1
        if done:
            self._save_state()
        if fresh and not self.behind:
            self._cursor = fresh[-1][0]  # only once all of them are indexed
        return done

    def _index_one(
        self, stream: Stream, transcript: Transcript, by_seq: dict[int, Transcript]
    ) -> None:
        products = self.stores.catalog.products(stream.id)

        def stored(seq: int) -> SegmentTranscript | None:
            found = by_seq.get(seq)
            return None if found is None else SegmentTranscript.from_json(json.loads(found.body))

        seq = transcript.segment_seq
        body, previous, following = stored(seq), stored(seq - 1), stored(seq + 1)
        assert body is not None
        self._replace(stream, body, previous, following, products, alert=True)
        observe_index_lag(transcript.created_at)
        # Its neighbours' documents change with it: this transcript takes over the previous
        # one's last words (and may carry its last utterance), and the next one, stored
        # first by another worker, may carry this one's last utterance.
        if previous is not None:
            self._replace(stream, previous, stored(seq - 2), body, products)
        if following is not None:
            self._replace(stream, following, body, stored(seq + 2), products)
        self._indexed.add((stream.id, seq))

    def _replace(
        self,
        stream: Stream,
        body: SegmentTranscript,
        previous: SegmentTranscript | None,
        following: SegmentTranscript | None,
        products: Any,
        alert: bool = False,
    ) -> None:
        """(Re)build one transcript's documents between its neighbours' handovers."""
        lexicon = load_lexicon(self.stores.settings.lexicon_path)  # re-read when edited
        docs = utterance_docs(
            body,
            indexed_until(body, following),
            products,
            streamer=stream.streamer,
            banned_words=matcher_for(lexicon),
            leading=carried_words(previous, body),
            focus=self._focus_before(stream, body, products),
            focus_seconds=self.stores.settings.product_focus_seconds,
            fuzzy=self._fuzzy,
        )
        self.index.replace_segment(stream.name, body.segment, docs)
        hits = [banned_row(doc, banned, lexicon.version) for doc in docs for banned in doc.banned]
        self.stores.catalog.replace_banned_hits(stream.id, body.segment, hits)
        if alert:
            self._alert(stream, hits)

    def _focus_before(
        self, stream: Stream, body: SegmentTranscript, products: Sequence[Product]
    ) -> ProductFocus | None:
        """The product named last before ``body``, within the focus window: looked up in
        the stream's earlier transcripts (each one's answer remembered: transcripts are
        write-once), newest first."""
        if not products or not body.words:
            return None
        settings = self.stores.settings
        window = settings.product_focus_seconds
        back = math.ceil(window / settings.segment_seconds) + 1
        signature = tuple((p.name, p.aliases) for p in products)
        if signature != self._focus_products.get(stream.id):
            self._focus_products[stream.id] = signature
            self._named = {k: v for k, v in self._named.items() if k[0] != stream.id}
        wanted = [seq for seq in range(body.segment - back, body.segment) if seq >= 0]
        missing = [seq for seq in wanted if (stream.id, seq) not in self._named]
        for row in self.stores.catalog.transcripts(stream.id, missing) if missing else ():
            transcript = SegmentTranscript.from_json(json.loads(row.body))
            self._named[(stream.id, row.segment_seq)] = last_named_product(
                transcript, products, self._fuzzy
            )
        start = body.words[0].offset
        for seq in reversed(wanted):
            focus = self._named.get((stream.id, seq))
            if focus is not None:
                return focus if start - focus.offset <= window else None
        return None

    def _alert(self, stream: Stream, hits: list[BannedHit]) -> None:
        """Tell the webhooks about banned words said moments ago (a live stream), once."""
        # Here: `livewitness search` catches up through this module, and the webhook
        # sender's HTTP client is a tenth of its start.
        from compliance.alerts import BANNED_WORD_EVENT, moment_link, payload_body

        settings, catalog = self.stores.settings, self.stores.catalog
        for hit in hits:
            age = (utc_now() - hit.at).total_seconds()
            if age > settings.alert_max_age_seconds:
                continue
            if catalog.alerted_near(stream.id, BANNED_WORD_EVENT, hit.term, hit.offset, 3.0):
                continue
            payload = {
                "event": BANNED_WORD_EVENT,
                "stream": stream.name,
                "streamer": stream.streamer,
                **banned_hit_json(hit),
                "link": moment_link(settings, stream.name, hit.offset),
            }
            catalog.add_alert(
                Alert(
                    stream_id=stream.id,
                    kind=BANNED_WORD_EVENT,
                    term=hit.term,
                    offset=hit.offset,
                    payload=payload_body(payload).decode(),
                ),
                stream.name,
            )

    def reindex(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Rebuild the index from the stored transcripts."""
        self.index.clear()
        self._indexed.clear()
        done = self.rescan(progress=progress)
        self.index.optimize()
        return done

    def rescan(
        self,
        streams: Sequence[Stream] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Rebuild the documents and banned-word hits of stored transcripts (all streams,
        or ``streams``) with today's lexicon and products; raises no alerts."""
        streams = self.stores.catalog.list_streams() if streams is None else streams
        total = sum(len(self.stores.catalog.transcripts(s.id)) for s in streams)
        done = 0
        for stream in streams:
            transcripts = self.stores.catalog.transcripts(stream.id)
            products = self.stores.catalog.products(stream.id)
            # From the blob store, the system of record, not the catalog's copies.
            bodies = [
                SegmentTranscript.from_json(json.loads(self.stores.blobs.get_bytes(t.blob_key)))
                for t in transcripts
            ]
            for position, body in enumerate(bodies):
                previous = bodies[position - 1] if position > 0 else None
                following = bodies[position + 1] if position + 1 < len(bodies) else None
                self._replace(stream, body, previous, following, products)
                self._indexed.add((stream.id, body.segment))
                done += 1
                if progress:
                    progress(done, total)
        self._save_state()
        return done

    def follow(self, stop: threading.Event, poll_seconds: float = 0.25) -> None:
        changes = self.stores.catalog.changes
        while not stop.is_set():
            seen = changes.count(TRANSCRIPTS_STORED)
            self.index_pending()
            changes.wait(TRANSCRIPTS_STORED, seen, poll_seconds)
