"""Transcription as speech arrives: the recorder's PCM tap, chunks cut at pauses, chunk
jobs, and their words filed as parts of the segment they began in."""

from __future__ import annotations

import json
import subprocess
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from core.jobs import TRANSCRIBE_CHUNK_JOB, TRANSCRIBE_JOB
from core.pcm import wav_samples
from core.settings import Settings
from core.transcript import SegmentTranscript, assemble_words, merge_parts
from recorder.speech import ChunkAudio, SpeechChunker
from storage.blobs.protocol import sha256_bytes
from tests.support.cli import run_cli
from tests.support.media import make_test_video
from tests.support.speech import clip, clip_path
from transcriber.audio import decode

STARTED = "2026-03-01T08:00:00+00:00"


def _chunks(name: str, **limits: float) -> tuple[list[ChunkAudio], float]:
    settings = Settings()
    samples = decode(settings.ffmpeg, clip_path(name))
    pcm = (samples * 32767).astype(np.int16).tobytes()
    chunker = SpeechChunker(
        pause_seconds=limits.get("pause", 0.5),
        long_pause_seconds=limits.get("long_pause", 1.0),
        min_seconds=limits.get("min", 3.0),
        max_seconds=limits.get("max", 15.0),
    )
    out: list[ChunkAudio] = []
    for at in range(0, len(pcm), 3200):  # 0.1 s reads, as from a pipe
        out += chunker.feed(pcm[at : at + 3200])
    out += chunker.flush()
    return out, len(samples) / 16000


@pytest.mark.parametrize("name", ["sales_1", "sales_2"])
def test_chunks_hold_every_phrase_and_end_in_pauses(name: str) -> None:
    chunks, length = _chunks(name)
    spans = [(c.start, c.start + c.duration) for c in chunks]
    assert all(a[1] <= b[0] for a, b in pairwise(spans)), "chunks overlap"
    assert all(1.0 <= c.duration <= 15.2 for c in chunks)
    # Every character said lies whole inside one chunk: cuts fall in pauses, never in a
    # word (a comma's pause may end a chunk: the clause is whole).
    for sentence in clip(name)["sentences"]:
        for char in sentence["chars"]:
            inside = [s for s in spans if s[0] <= char["onset"] and char["end"] <= s[1]]
            assert inside, f"{char['char']} of {sentence['text']} is cut: {spans}"
    # Phrases are joined up to the minimum length (unless the pause is long).
    joined, _ = _chunks(name, min=8.0, long_pause=3.0)
    assert len(joined) < len(chunks) and all(c.duration >= 8.0 for c in joined[:-1])
    assert sum(c.duration for c in chunks) <= length


def test_silence_gives_no_chunk_and_talk_without_pauses_is_cut_at_the_maximum() -> None:
    assert _chunks("silence")[0] == []
    # Music reads as voice to the detector: it is cut at the maximum length, back to back.
    chunks, length = _chunks("music", max=4.0)
    assert len(chunks) >= 3 and all(c.duration <= 4.0 for c in chunks)
    assert abs(sum(c.duration for c in chunks) - length) < 0.1  # nothing lost between them
    # A long pause ends a chunk shorter than the minimum.
    short, _ = _chunks("sales_1", min=60.0, long_pause=0.4)
    assert len(short) > 1


def test_an_ingest_transcribes_speech_chunks_filed_under_their_segments(
    home: Path, ffmpeg: str, tmp_path: Path
) -> None:
    """The ingest's ffmpeg taps its audio: chunk jobs, not segment jobs; each chunk's
    words are a part of the segment it began in, on the wall clock, found by search."""
    from storage.stores import open_stores

    video = make_test_video(ffmpeg, tmp_path / "talk.ts", 25.4, audio=clip_path("sales_1"))
    result = run_cli(home, "ingest", str(video), "--stream", "talk", "--started-at", STARTED)
    assert result.returncode == 0, result.stderr
    stores = open_stores(Settings(home=home))
    try:
        catalog = stores.catalog
        stream = catalog.get_stream("talk")
        jobs = catalog.jobs(stream.id)
        assert {j.kind for j in jobs} & {TRANSCRIBE_CHUNK_JOB, TRANSCRIBE_JOB} == {
            TRANSCRIBE_CHUNK_JOB
        }
        assert all(j.status == "done" for j in jobs if j.kind == TRANSCRIBE_CHUNK_JOB)
        segments = {s.seq: s for s in catalog.segments(stream.id)}
        chunks = catalog.speech_chunks(stream.id)
        assert len(chunks) >= 3
        for chunk in chunks:
            # Derived audio, stored whole, under the segment that was being written.
            data = stores.blobs.get_bytes(chunk.blob_key)
            assert sha256_bytes(data) == chunk.sha256
            assert abs(len(wav_samples(data)) / 16000 - chunk.duration) < 0.01
            segment = segments[chunk.segment_seq]
            assert segment.starts_at.timestamp() <= chunk.starts_at.timestamp() + 0.05
            assert chunk.starts_at.timestamp() < segment.starts_at.timestamp() + segment.duration
        rows = catalog.transcripts(stream.id)
        assert sorted(r.part for r in rows) == [c.seq + 1 for c in chunks]
        parts = [SegmentTranscript.from_json(json.loads(r.body)) for r in rows]
        assert all(p.chunk_sha256 for p in parts)
        words = assemble_words(parts)
        assert [w.offset for w in words] == sorted(w.offset for w in words)
        merged = merge_parts(parts)
        assert set(merged) <= set(segments)
        # The words land on the wall clock: 假一赔十 is said at its onset in the file.
        onset = next(t["onset"] for t in clip("sales_1")["terms"] if t["text"] == "假一赔十")
        found = run_cli(home, "search", "假一赔十", "--stream", "talk", "--json")
        assert found.returncode == 0, found.stderr
        hits = json.loads(found.stdout)
        assert hits and abs(hits[0]["match_offset"] - onset) < 0.5
    finally:
        stores.close()


def test_a_source_without_audio_is_recorded_without_chunks(
    home: Path, ffmpeg: str, tmp_path: Path
) -> None:
    from storage.stores import open_stores

    video = make_test_video(ffmpeg, tmp_path / "mute.ts", 6.0)
    silent = tmp_path / "video-only.ts"
    subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(video), "-an", "-c", "copy", str(silent)], check=True
    )
    result = run_cli(
        home, "ingest", str(silent), "--stream", "mute", "--started-at", STARTED,
        "--no-transcribe",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stores = open_stores(Settings(home=home))
    try:
        stream = stores.catalog.get_stream("mute")
        assert stores.catalog.segments(stream.id)
        assert stores.catalog.speech_chunks(stream.id) == []
        # Its segments are queued whole, as before chunks existed.
        assert {j.kind for j in stores.catalog.jobs(stream.id)} >= {TRANSCRIBE_JOB}
    finally:
        stores.close()
