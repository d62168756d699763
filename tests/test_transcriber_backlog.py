"""`/health`'s transcriber backlog counts speech-chunk jobs as well as segment jobs."""

from __future__ import annotations

from cli.serve import _backlog_of
from core.timeutil import utc_now
from storage.models import SpeechChunk
from storage.stores import Stores


def test_the_transcriber_backlog_counts_speech_chunk_jobs(stores: Stores) -> None:
    stream_id = stores.chain.open_stream("room", "rtmp://example.com/live/room")
    backlog = _backlog_of("transcriber", stores)
    assert backlog is not None and backlog() == 0
    stores.catalog.add_speech_chunk(
        SpeechChunk(
            stream_id=stream_id,
            seq=0,
            segment_seq=0,
            starts_at=utc_now(),
            offset=0.0,
            duration=3.0,
            blob_key="chunks/room/0.wav",
            sha256="0" * 64,
        )
    )
    assert backlog() == 1  # the chunk's transcription job is waiting
    ocr = _backlog_of("ocr", stores)
    assert ocr is not None and ocr() == 0
