"""Transcript records read and write exactly the JSON that is stored and shown: the stored
body of a segment's transcript (byte for byte) and the utterances the CLI, the API and
evidence packages emit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from core.transcript import (
    SegmentTranscript,
    TranscriptWord,
    Utterance,
    UtteranceWord,
    assemble_words,
    handover_start,
    utterances_of,
)
from storage.models import Segment
from storage.signing import canonical_json
from transcriber.protocol import Word
from transcriber.worker import build_document

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SEGMENT = 10.0
CONTEXT = 3.0  # seconds of the previous segment decoded in front of each segment
HANDOVER = 1.0


def stored_body(seq: int, heard: list[Word]) -> dict[str, Any]:
    """A transcript as a worker stores it (canonical JSON) and readers load it. ``heard``
    is timed from the start of the decoded audio, the previous segment's context first."""
    context = CONTEXT if seq > 0 else 0.0
    kept_from = handover_start(context, HANDOVER)
    segment = Segment(
        seq=seq,
        sha256=f"{seq:02x}" * 32,
        starts_at=T0 + timedelta(seconds=SEGMENT * seq),
        duration=SEGMENT,
    )
    kept = [w for w in heard if w.start >= kept_from]
    transcript = build_document(
        "shop", segment, kept, context, context - kept_from, T0, "test", "zh"
    )
    return dict(json.loads(canonical_json(transcript.to_json())))


# Segment 0 heard "七天無" at its end; segment 1, decoded from 3 s before its start, heard
# it again with what follows and keeps it from 1 s before its start on, as context.
SEGMENT_0 = [Word("七天", 9.2, 9.58, 0.6, 0), Word("無", 9.8, 9.98, 0.8, 0)]
SEGMENT_1 = [
    Word("七天", 2.2, 2.58, 0.91, 0),
    Word("無", 2.8, 2.98, 0.8765, 0),
    Word("理由", 3.1, 3.48, 0.95, 0),
    Word("买", 5.0, 5.2, 0.9, 1),
]

# What the worker stored for SEGMENT_1 before transcripts were records.
STORED_SEGMENT_1 = (
    '{"context_seconds":3.0,"from_offset":9.0,"language":"zh","model":"test",'
    '"search":"理由买","segment":1,"segment_sha256":"' + "01" * 32 + '",'
    '"segment_start":"2026-11-20T12:00:10.000Z","stream":"shop","text":"理由买","v":1,'
    '"words":['
    '{"ctx":true,"end":"2026-11-20T12:00:09.580Z","end_offset":9.58,"offset":9.2,'
    '"p":0.91,"start":"2026-11-20T12:00:09.200Z","text":"七天","u":0},'
    '{"ctx":true,"end":"2026-11-20T12:00:09.980Z","end_offset":9.98,"offset":9.8,'
    '"p":0.876,"start":"2026-11-20T12:00:09.800Z","text":"无","u":0},'
    '{"ctx":false,"end":"2026-11-20T12:00:10.480Z","end_offset":10.48,"offset":10.1,'
    '"p":0.95,"start":"2026-11-20T12:00:10.100Z","text":"理由","u":0},'
    '{"ctx":false,"end":"2026-11-20T12:00:12.200Z","end_offset":12.2,"offset":12.0,'
    '"p":0.9,"start":"2026-11-20T12:00:12.000Z","text":"买","u":1}]}'
)

# What `livewitness transcript --json` printed for both segments before, key order included.
SHOWN = [
    {
        "text": "七天无理由",
        "search": "7天无理由",
        "start": "2026-11-20T12:00:09.200Z",
        "end": "2026-11-20T12:00:10.480Z",
        "offset": 9.2,
        "end_offset": 10.48,
        "segment": 1,
        "words": [
            {
                "text": "七天",
                "start": "2026-11-20T12:00:09.200Z",
                "end": "2026-11-20T12:00:09.580Z",
                "offset": 9.2,
                "end_offset": 9.58,
                "p": 0.91,
            },
            {
                "text": "无",
                "start": "2026-11-20T12:00:09.800Z",
                "end": "2026-11-20T12:00:09.980Z",
                "offset": 9.8,
                "end_offset": 9.98,
                "p": 0.876,
            },
            {
                "text": "理由",
                "start": "2026-11-20T12:00:10.100Z",
                "end": "2026-11-20T12:00:10.480Z",
                "offset": 10.1,
                "end_offset": 10.48,
                "p": 0.95,
            },
        ],
    },
    {
        "text": "买",
        "search": "买",
        "start": "2026-11-20T12:00:12.000Z",
        "end": "2026-11-20T12:00:12.200Z",
        "offset": 12.0,
        "end_offset": 12.2,
        "segment": 1,
        "words": [
            {
                "text": "买",
                "start": "2026-11-20T12:00:12.000Z",
                "end": "2026-11-20T12:00:12.200Z",
                "offset": 12.0,
                "end_offset": 12.2,
                "p": 0.9,
            }
        ],
    },
]


def test_a_stored_body_survives_reading_and_writing() -> None:
    for body in (stored_body(0, SEGMENT_0), stored_body(1, SEGMENT_1)):
        record = SegmentTranscript.from_json(body)
        assert record.to_json() == body
        assert canonical_json(record.to_json()) == canonical_json(body)


def test_the_stored_bytes_are_as_before() -> None:
    assert canonical_json(stored_body(1, SEGMENT_1)).decode() == STORED_SEGMENT_1


def test_the_shown_utterances_are_as_before() -> None:
    stored = [
        SegmentTranscript.from_json(stored_body(s, w)) for s, w in [(1, SEGMENT_1), (0, SEGMENT_0)]
    ]
    shown = [u.to_json() for u in utterances_of(assemble_words(stored))]
    assert json.dumps(shown, ensure_ascii=False) == json.dumps(SHOWN, ensure_ascii=False)


def test_records_round_trip() -> None:
    transcript = SegmentTranscript.from_json(stored_body(1, SEGMENT_1))
    assert SegmentTranscript.from_json(transcript.to_json()) == transcript
    for word in transcript.words:
        assert TranscriptWord.from_json(word.to_json(), word.segment) == word
    utterances = utterances_of(list(transcript.words))
    assert utterances
    for utterance in utterances:
        assert Utterance.from_json(utterance.to_json()) == utterance
        for spoken in utterance.words:
            assert UtteranceWord.from_json(spoken.to_json()) == spoken
