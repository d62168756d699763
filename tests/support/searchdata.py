"""Synthetic transcripts stored the real way (segments chained, transcripts write-once),
for search tests that need no Whisper model, and the shop talk they store: ``SHOP`` as
said, ``MISHEARD`` as a recogniser gets it wrong."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage.blobs.protocol import sha256_file
from storage.chain import ClosedSegment
from storage.models import Segment
from storage.stores import Stores
from transcriber.protocol import Word
from transcriber.worker import build_document, store_transcript

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SEGMENT = 10.0

SHOP = [
    [(0.5, "欢迎来到直播间"), (3.0, "今天这款羽绒服只要九十九元")],
    [(0.2, "全网最低价假一赔十"), (4.0, "七天无理由退货放心买")],
    [(1.0, "下单就包邮买一送一"), (5.0, "这款手镯是纯银的")],
]
MISHEARD = [
    [(0.5, "今天这款与荣福只要99元"), (4.0, "假一陪时七天无理由退货")],
    [(0.5, "下单就包油这款手桌品质国家极"), (5.0, "最近很多人问第一次买怎么办")],
]


def add_stream(
    stores: Stores, tmp: Path, name: str, segments: list[list[tuple[float, str]]], t0: datetime = T0
) -> None:
    """Chain one segment per list entry and store its transcript: (second, utterance)
    pairs, seconds inside the segment, one word per character, 0.2 s apart."""
    stream_id = stores.chain.open_stream(name)
    stream = stores.catalog.get_stream(name)
    for seq, utterances in enumerate(segments):
        path = tmp / f"{name}-{seq}.ts"
        path.write_bytes(os.urandom(256))
        closed = ClosedSegment(
            path,
            sha256_file(path),
            256,
            t0 + timedelta(seconds=SEGMENT * seq),
            SEGMENT,
            f"test/{name}-{seq}",
        )
        segment = stores.chain.append_segment(stream_id, name, closed)
        words = [
            Word(char, at + 0.2 * i, at + 0.2 * i + 0.18, 0.9, number)
            for number, (at, text) in enumerate(utterances)
            for i, char in enumerate(text)
        ]
        first = stores.catalog.first_segment(stream_id)
        assert first is not None
        document = build_document(name, segment, words, 0.0, 0.0, first.starts_at, "test", "zh")
        store_transcript(stores, stream, segment.seq, document)


def store_utterances(
    stores: Stores, name: str, segment: Segment, utterances: list[tuple[float, str]]
) -> None:
    """Store a transcript of a recorded segment (real media, e.g. ``moments.record``):
    (second, utterance) pairs inside the segment, one word per character, 0.2 s apart."""
    stream = stores.catalog.get_stream(name)
    first = stores.catalog.first_segment(stream.id)
    assert first is not None
    words = [
        Word(char, at + 0.2 * i, at + 0.2 * i + 0.18, 0.9, number)
        for number, (at, text) in enumerate(utterances)
        for i, char in enumerate(text)
    ]
    document = build_document(name, segment, words, 0.0, 0.0, first.starts_at, "test", "zh")
    store_transcript(stores, stream, segment.seq, document)
