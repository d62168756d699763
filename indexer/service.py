"""Keep the search index in step with the stored transcripts.

The indexer follows the catalog's transcripts (near real time: a transcript is
searchable at the next poll) and can rebuild the whole index from them, since stored
transcripts are the system of record. Chat, product cards and on-screen text are
followed the same way, by catalog id (indexer/timeline_docs.py). Which transcripts are
indexed is remembered in the index's own directory; replaying one is harmless
(deterministic document ids).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from compliance.hits import banned_hit_json
from compliance.matcher import BannedWordMatcher, load_lexicon, matcher_for
from core.events import StreamEvent
from core.timeutil import parse_iso, utc_now
from core.transcript import (
    SegmentTranscript,
    carried_words,
    indexed_until,
    merge_parts,
    piece_spans,
)
from indexer.documents import (
    FuzzyMatching,
    ProductFocus,
    UtteranceDoc,
    last_named_product,
    utterance_docs,
)
from indexer.factory import indexed_state_path
from indexer.protocol import SearchIndex
from indexer.timeline_docs import EVENT_DOC_KINDS, event_doc, screen_docs
from storage.catalog import TRANSCRIPTS_STORED
from storage.metrics import observe_index_lag
from storage.models import Alert, BannedHit, Product, Stream
from storage.stores import Stores

SPAN_SLACK = 0.05  # seconds: a hit's offset and its words' are rounded apart


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
    def __init__(
        self, stores: Stores, index: SearchIndex, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.stores = stores
        self.index = index
        self.clock = clock  # what "said moments ago" and "the last hour" are measured from
        self._state_path = indexed_state_path(stores.settings)
        # Kept on this host whichever backend holds the index; only the embedded engine
        # creates this directory itself.
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        # (stream id, segment seq, part) of each transcript indexed (core.transcript)
        self._indexed: set[tuple[int, int, int]] = self._load_state()
        if not self._state_path.exists():
            # Written at once: the api checks for it to tell that an indexer writes the
            # embedded index in this data directory (cli/placement.py).
            self._save_state()
        self._cursor = 0  # the last transcript id looked at (a fresh process reads all once)
        settings = stores.settings
        self._fuzzy = FuzzyMatching.of(
            settings.fuzzy_mention_min_syllables, settings.southern_confusions
        )
        self._southern = settings.southern_confusions
        # The product each transcript names last (None: none), for claims that name none.
        self._named: dict[tuple[int, int], ProductFocus | None] = {}
        self._focus_products: dict[int, tuple[tuple[str, str], ...]] = {}
        self.behind = 0  # transcripts left waiting by the last index_pending(limit)
        # The last event and screen-text rows indexed (catalog ids), kept beside the state.
        self._timeline_path = self._state_path.with_name("timeline.json")
        self._events_after, self._screen_after = self._load_timeline()
        self._screen_top = ""  # see Catalog.screen_top

    def _load_state(self) -> set[tuple[int, int, int]]:
        try:
            keys = json.loads(self._state_path.read_text())
            # Earlier releases wrote (stream, seq) pairs: whole segments, part 0.
            return {(int(k[0]), int(k[1]), int(k[2]) if len(k) > 2 else 0) for k in keys}
        except (FileNotFoundError, ValueError, IndexError, TypeError):
            return set()

    def _load_timeline(self) -> tuple[int, int]:
        try:
            state = json.loads(self._timeline_path.read_text())
            return int(state["events"]), int(state["screen"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return 0, 0

    def _save_timeline(self) -> None:
        tmp = self._timeline_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"events": self._events_after, "screen": self._screen_after}))
        tmp.replace(self._timeline_path)

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
        todo: dict[int, dict[int, set[int]]] = {}  # stream -> segment -> new parts
        waiting = 0
        for _id, stream_id, seq, part in fresh:
            if (stream_id, seq, part) not in self._indexed:
                waiting += 1
                if limit is None or waiting <= limit:
                    todo.setdefault(stream_id, {}).setdefault(seq, set()).add(part)
        self.behind = waiting - min(waiting, limit) if limit is not None else 0
        done = 0
        for stream_id, seqs in sorted(todo.items()):
            stream = catalog.stream_by_id(stream_id)
            near = {n for seq in seqs for n in range(seq - 2, seq + 3)}
            rows = catalog.transcripts(stream_id, near)
            parsed = [SegmentTranscript.from_json(json.loads(t.body)) for t in rows]
            by_seq = merge_parts(parsed)
            # Where early pieces' words still stand (alerts there say so), and those the
            # chunks just stored replace (alerts there are confirmed or retracted).
            stored = {(seq, part) for seq, parts in seqs.items() for part in parts}
            provisional, replaced = piece_spans(parsed, stored)
            stored_at = {t.segment_seq: t.created_at for t in rows}  # its newest part's
            for seq, parts in sorted(seqs.items()):
                self._index_one(
                    stream, seq, by_seq, stored_at[seq], provisional, replaced.get(seq, [])
                )
                self._indexed |= {(stream_id, seq, part) for part in parts}
                done += len(parts)
        if done:
            self._save_state()
        if fresh and not self.behind:
            self._cursor = fresh[-1][0]  # only once all of them are indexed
        self.index_timeline()
        return done

    # -- chat, cards and on-screen text ----------------------------------------------------
    def index_timeline(self, limit: int = 2000) -> int:
        """Index the chat messages, product cards and screen text stored since the last
        call (up to ``limit`` events); returns how many documents were written."""
        catalog = self.stores.catalog
        done = 0
        rows = catalog.events_after(self._events_after, EVENT_DOC_KINDS, limit)
        by_stream: dict[int, list[StreamEvent]] = {}
        last = self._events_after
        for row in rows:
            by_stream.setdefault(row.stream_id, []).append(
                StreamEvent.from_json(json.loads(row.body))
            )
            last = row.id
        for stream_id, events in by_stream.items():
            done += self._index_events(catalog.stream_by_id(stream_id), events, alert=True)
        newest, changed = catalog.screen_text_after(self._screen_after)
        top = catalog.screen_top()
        if top is not None and top[2] != self._screen_top:
            changed.add((top[0], top[1]))
            self._screen_top = top[2]
        for stream_id, seq in sorted(changed):
            done += self._index_screen(catalog.stream_by_id(stream_id), seq, alert=True)
        if (last, newest) != (self._events_after, self._screen_after):
            self._events_after, self._screen_after = last, newest
            self._save_timeline()
        return done

    def _timeline_tools(self, stream: Stream) -> tuple[Sequence[Product], BannedWordMatcher]:
        lexicon = load_lexicon(self.stores.settings.lexicon_path)
        return self.stores.catalog.products(stream.id), matcher_for(lexicon)

    def _index_events(
        self, stream: Stream, events: Sequence[StreamEvent], alert: bool = False
    ) -> int:
        first = self.stores.catalog.first_segment(stream.id)
        # Offsets count from the first segment; events of a stream not recorded (yet)
        # count from the first of them (their absolute times are what matters).
        origin = first.starts_at if first is not None else min(e.at for e in events)
        products, matcher = self._timeline_tools(stream)
        name, streamer, fuzzy = stream.name, stream.streamer, self._fuzzy
        built = [
            event_doc(event, name, streamer, origin, products, None, matcher, fuzzy)
            for event in events
        ]
        docs = [doc for doc in built if doc is not None]
        if docs:
            self.index.put_documents(docs)
        if alert:
            self._alert_written(stream, [d for d in docs if d.kind == "chat"], "chat")
        return len(docs)

    def _alert_written(self, stream: Stream, docs: Sequence[UtteranceDoc], kind: str) -> None:
        """Banned terms in the chat or on screen moments ago: alerts, as for speech (their
        hits are worked out when a report asks: compliance/text_hits.py)."""
        version = load_lexicon(self.stores.settings.lexicon_path).version
        hits = [banned_row(doc, banned, version) for doc in docs for banned in doc.banned]
        if hits:
            self._alert(stream, hits, kind)

    def _index_screen(self, stream: Stream, seq: int, alert: bool = False) -> int:
        """(Re)index a segment's screen text, and the next segment's (whose lines that
        continue this segment's are this segment's documents)."""
        products, matcher = self._timeline_tools(stream)
        catalog = self.stores.catalog
        rows = catalog.screen_rows(stream.id, stream.name, (seq - 1, seq, seq + 1))
        done = 0
        for one in (seq, seq + 1):
            if one == seq + 1 and not any(r.segment_seq == one for r in rows):
                continue
            docs = screen_docs(
                stream.name, stream.streamer, one, rows, products, None, matcher, self._fuzzy
            )
            self.index.replace_segment(stream.name, one, docs, kind="screen")
            if alert:
                self._alert_written(stream, docs, "screen")
            done += len(docs)
        return done

    def _reindex_timeline(self, streams: Sequence[Stream]) -> None:
        """Every event and screen line of ``streams`` indexed again (a reindex, a rescan)."""
        catalog = self.stores.catalog
        for stream in streams:
            rows = catalog.events_between(stream.id, kinds=list(EVENT_DOC_KINDS))
            if rows:
                events = [StreamEvent.from_json(json.loads(row.body)) for row in rows]
                for start in range(0, len(events), 1000):
                    self._index_events(stream, events[start : start + 1000])
            lines = catalog.screen_text(stream.id, stream.name)
            for seq in sorted({seq for line in lines for seq in line.segments}):
                self._index_screen(stream, seq)

    def _index_one(
        self,
        stream: Stream,
        seq: int,
        by_seq: dict[int, SegmentTranscript],
        stored_at: datetime,
        provisional: Sequence[tuple[float, float]] = (),
        replaced: Sequence[tuple[float, float]] = (),
    ) -> None:
        """(Re)index segment ``seq`` (all its parts) and its neighbours' documents;
        ``provisional``: where words are still an early piece's, ``replaced``: where
        pieces' words were just replaced by their chunk's (core.transcript)."""
        products = self.stores.catalog.products(stream.id)
        stored = by_seq.get
        body, previous, following = by_seq[seq], stored(seq - 1), stored(seq + 1)
        self._replace(
            stream, body, previous, following, products,
            alert=True, provisional=provisional, replaced=replaced,
        )  # fmt: skip
        observe_index_lag(stored_at)
        # Its neighbours' documents change with it: this transcript takes over the previous
        # one's last words (and may carry its last utterance), and the next one, stored
        # first by another worker, may carry this one's last utterance.
        if previous is not None:
            self._replace(stream, previous, stored(seq - 2), body, products)
        if following is not None:
            self._replace(stream, following, body, stored(seq + 2), products)

    def _replace(
        self,
        stream: Stream,
        body: SegmentTranscript,
        previous: SegmentTranscript | None,
        following: SegmentTranscript | None,
        products: Any,
        alert: bool = False,
        provisional: Sequence[tuple[float, float]] = (),
        replaced: Sequence[tuple[float, float]] = (),
    ) -> None:
        """(Re)build one transcript's documents between its neighbours' handovers."""
        lexicon = load_lexicon(self.stores.settings.lexicon_path)  # re-read when edited
        docs = utterance_docs(
            body,
            indexed_until(body, following),
            products,
            streamer=stream.streamer,
            banned_words=matcher_for(
                lexicon, self.stores.settings.fuzzy_mention_min_syllables, self._southern
            ),
            leading=carried_words(previous, body),
            focus=self._focus_before(stream, body, products),
            focus_seconds=self.stores.settings.product_focus_seconds,
            fuzzy=self._fuzzy,
        )
        self.index.replace_segment(stream.name, body.segment, docs)
        hits = [banned_row(doc, banned, lexicon.version) for doc in docs for banned in doc.banned]
        self.stores.catalog.replace_banned_hits(stream.id, body.segment, hits)
        if alert:
            self._alert(stream, hits, provisional=provisional)
            self._retract(stream, body, hits, replaced)
            self._check_spike(stream, hits)

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
        # The segment just before may still be getting parts (speech chunks transcribed
        # out of order): asked again each time; older ones are settled.
        missing = [
            seq for seq in wanted if (stream.id, seq) not in self._named or seq == body.segment - 1
        ]
        rows = self.stores.catalog.transcripts(stream.id, missing) if missing else ()
        merged = merge_parts(SegmentTranscript.from_json(json.loads(row.body)) for row in rows)
        for seq, transcript in merged.items():
            self._named[(stream.id, seq)] = last_named_product(transcript, products, self._fuzzy)
        start = body.words[0].offset
        for seq in reversed(wanted):
            focus = self._named.get((stream.id, seq))
            if focus is not None:
                return focus if start - focus.offset <= window else None
        return None

    def _alert(
        self,
        stream: Stream,
        hits: list[BannedHit],
        kind: str = "speech",
        provisional: Sequence[tuple[float, float]] = (),
    ) -> None:
        """Tell the webhooks about banned words said (or written in the chat, or shown on
        screen: ``kind``) moments ago (a live stream), once; a hit in ``provisional``
        spans was heard by the fast pass only, so far, and its payload says so."""
        # Here: `livewitness search` catches up through this module, and the webhook
        # sender's HTTP client is a tenth of its start.
        from compliance.alerts import BANNED_WORD_EVENT, moment_link

        settings, catalog = self.stores.settings, self.stores.catalog
        for hit in hits:
            age = (self.clock() - hit.at).total_seconds()
            if age > settings.alert_max_age_seconds:
                continue
            if catalog.alerted_near(stream.id, BANNED_WORD_EVENT, hit.term, hit.offset, 3.0):
                continue
            payload = {
                "event": BANNED_WORD_EVENT,
                "stream": stream.name,
                "streamer": stream.streamer,
                **banned_hit_json(hit),
                **({} if kind == "speech" else {"kind": kind}),
                **({"provisional": True} if _within(hit.offset, provisional) else {}),
                "link": moment_link(settings, stream.name, hit.offset),
            }
            self._raise(stream, BANNED_WORD_EVENT, hit.term, hit.offset, payload)

    def _raise(
        self, stream: Stream, kind: str, term: str, offset: float, payload: dict[str, Any]
    ) -> None:
        """Store an alert and queue it for the webhooks (the outbox)."""
        from compliance.alerts import payload_body

        self.stores.catalog.add_alert(
            Alert(
                stream_id=stream.id,
                kind=kind,
                term=term,
                offset=offset,
                payload=payload_body(payload).decode(),
            ),
            stream.name,
        )

    def _retract(
        self,
        stream: Stream,
        body: SegmentTranscript,
        hits: list[BannedHit],
        replaced: Sequence[tuple[float, float]],
    ) -> None:
        """Alerts raised on early pieces' provisional words in the ``replaced`` spans
        (their chunk's transcript was just stored) whose term the chunk's words do not
        hold within 3 s: told to the webhooks as retracted, once, with what the chunk
        heard there."""
        if not replaced:
            return
        from compliance.alerts import BANNED_WORD_EVENT, RETRACTED_EVENT

        catalog = self.stores.catalog
        for low, high in replaced:
            raised = catalog.alerts_between(stream.id, BANNED_WORD_EVENT, low - SPAN_SLACK, high)
            for alert in raised:
                sent = json.loads(alert.payload)
                if not sent.get("provisional"):
                    continue
                if any(h.term == alert.term and abs(h.offset - alert.offset) <= 3.0 for h in hits):
                    continue  # confirmed
                if catalog.alerted_near(stream.id, RETRACTED_EVENT, alert.term, alert.offset, 0.0):
                    continue
                end = float(sent.get("end_offset", alert.offset))
                heard = "".join(
                    w.text for w in body.words if alert.offset - 1.0 <= w.offset <= end + 1.0
                ).strip()
                payload = {
                    "event": RETRACTED_EVENT,
                    "stream": stream.name,
                    "streamer": stream.streamer,
                    "term": alert.term,
                    "at": sent.get("at"),
                    "offset": alert.offset,
                    "heard_provisionally": sent.get("heard"),
                    "heard": heard,
                    "link": sent.get("link"),
                }
                self._raise(stream, RETRACTED_EVENT, alert.term, alert.offset, payload)

    def _check_spike(self, stream: Stream, hits: list[BannedHit]) -> None:
        """After new hits of the last hour: has their streamer's rate jumped?"""
        now = self.clock()
        if not stream.streamer or not any(now - h.at < timedelta(hours=1) for h in hits):
            return
        from compliance.spikes import raise_spikes  # imports the webhook sender (httpx)

        raise_spikes(self.stores, now, [stream.streamer])

    def reindex(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Rebuild the index from the stored transcripts."""
        self.index.clear()
        self._indexed.clear()
        # Whatever is stored now is indexed by rescan; what arrives later is followed.
        self._events_after = self.stores.catalog.last_event_id()
        self._screen_after, _ = self.stores.catalog.screen_text_after(self._screen_after)
        self._save_timeline()
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
            parts = [
                SegmentTranscript.from_json(json.loads(self.stores.blobs.get_bytes(t.blob_key)))
                for t in transcripts
            ]
            bodies = list(merge_parts(parts).values())
            for position, body in enumerate(bodies):
                previous = bodies[position - 1] if position > 0 else None
                following = bodies[position + 1] if position + 1 < len(bodies) else None
                self._replace(stream, body, previous, following, products)
                done += 1
                if progress:
                    progress(done, total)
            self._indexed |= {(stream.id, t.segment_seq, t.part) for t in transcripts}
        self._reindex_timeline(streams)
        self._save_state()
        return done

    def follow(self, stop: threading.Event, poll_seconds: float = 0.25) -> None:
        changes = self.stores.catalog.changes
        while not stop.is_set():
            seen = changes.count(TRANSCRIPTS_STORED)
            self.index_pending()
            changes.wait(TRANSCRIPTS_STORED, seen, poll_seconds)


def _within(offset: float, spans: Sequence[tuple[float, float]]) -> bool:
    return any(start - SPAN_SLACK <= offset <= end for start, end in spans)
