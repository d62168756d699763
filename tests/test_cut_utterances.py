"""A sentence said across a segment cut: the earlier segment heard its start, the later
one (decoded with context) the rest. Search, banned-word hits and the transcript see it
once and whole, whichever transcript was stored first."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from core.transcript import SegmentTranscript, assemble_words, utterances_of
from indexer.factory import open_search_index
from indexer.protocol import SearchQuery
from indexer.service import Indexer
from storage.blobs.protocol import sha256_file
from storage.chain import ClosedSegment
from storage.models import Segment
from storage.stores import Stores
from tests.support.searchdata import T0
from transcriber.protocol import Word
from transcriber.worker import build_document, store_transcript

SEGMENT = 10.0
CONTEXT = 3.0  # seconds of the previous segment decoded with each segment
HANDOVER = 1.0  # the last second of a segment is taken from the next one's decoding

Heard = list[tuple[str, float, int]]  # (character, stream seconds, decoder utterance)


def said(text: str, at: float, utterance: int = 0) -> Heard:
    return [(char, at + 0.2 * i, utterance) for i, char in enumerate(text)]


def chain(stores: Stores, tmp_path: Path, name: str, count: int) -> list[Segment]:
    stream_id = stores.chain.open_stream(name)
    segments = []
    for seq in range(count):
        path = tmp_path / f"{name}-{seq}.ts"
        path.write_bytes(os.urandom(256))
        start = T0 + timedelta(seconds=SEGMENT * seq)
        closed = ClosedSegment(path, sha256_file(path), 256, start, SEGMENT, f"t/{name}-{seq}")
        segments.append(stores.chain.append_segment(stream_id, name, closed))
    return segments


def store(stores: Stores, name: str, segment: Segment, heard: Heard) -> None:
    """Store what a worker would from a decoding that heard ``heard`` (context included)."""
    boundary = CONTEXT if segment.seq > 0 else 0.0
    audio_start = SEGMENT * segment.seq - boundary  # stream seconds
    handover = boundary - min(HANDOVER, boundary)
    words = [
        Word(char, at - audio_start, at - audio_start + 0.18, 0.9, utterance)
        for char, at, utterance in heard
        if at - audio_start >= handover
    ]
    document = build_document(name, segment, words, boundary, boundary - handover, T0, "test", "zh")
    store_transcript(stores, stores.catalog.get_stream(name), segment.seq, document)


# Segment 0 heard "国家级七天无理由" before its end cut the sentence; segment 1, decoding
# from 7 s on, heard it all and keeps its words from 9 s (its handover) on: "退货".
SENTENCE = "国家级七天无理由退货"
PROMISE = [
    said("全网最低价", 2.0) + said(SENTENCE[:8], 7.4, 1),
    said(SENTENCE, 7.4) + said("放心买", 12.0, 1),
]


@pytest.mark.parametrize("order", [[0, 1], [1, 0]], ids=["in-order", "later-one-first"])
def test_a_sentence_cut_by_a_segment_boundary_is_indexed_once_and_whole(
    stores: Stores, tmp_path: Path, order: list[int]
) -> None:
    segments = chain(stores, tmp_path, "shop", 2)
    index = open_search_index(stores)
    try:
        indexer = Indexer(stores, index)
        for seq in order:  # each transcript indexed as soon as it is stored
            store(stores, "shop", segments[seq], PROMISE[seq])
            indexer.index_pending()
        found = index.search(SearchQuery(text="七天无理由退货", stream="shop"))
        assert [(h.text, h.match, h.segment) for h in found.hits] == [(SENTENCE, "exact", 1)]
        assert found.hits[0].offset == pytest.approx(7.4, abs=0.01)
        # Said once, found once: segment 0's documents no longer hold it.
        assert index.search(SearchQuery(text="国家级", stream="shop")).total == 1
        assert [h.text for h in index.search(SearchQuery(text="全网最低价")).hits] == ["全网最低价"]
    finally:
        index.close()
    stream = stores.catalog.get_stream("shop")
    banned = [(h.term, h.segment_seq) for h in stores.catalog.banned_hits([stream.id])]
    assert sorted(banned) == [("全网最低价", 0), ("国家级", 1)]
    # The assembled transcript (API, CLI, evidence packages) shows one utterance too.
    stored = [
        SegmentTranscript.from_json(json.loads(t.body))
        for t in stores.catalog.transcripts(stream.id)
    ]
    texts = [u.text for u in utterances_of(assemble_words(stored))]
    assert texts == ["全网最低价", SENTENCE, "放心买"]


def test_a_pause_at_the_cut_keeps_two_sentences(stores: Stores, tmp_path: Path) -> None:
    segments = chain(stores, tmp_path, "calm", 2)
    store(stores, "calm", segments[0], said("假一赔十", 8.0))
    store(stores, "calm", segments[1], said("七天无理由退货", 9.4))  # after 0.62 s of quiet
    index = open_search_index(stores)
    try:
        Indexer(stores, index).index_pending()
        found = {
            phrase: [(h.text, h.segment) for h in index.search(SearchQuery(text=phrase)).hits]
            for phrase in ("假一赔十", "七天无理由退货")
        }
    finally:
        index.close()
    assert found == {"假一赔十": [("假一赔十", 0)], "七天无理由退货": [("七天无理由退货", 1)]}
