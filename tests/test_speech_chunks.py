"""Transcription as speech arrives: the recorder's PCM tap, chunks cut at pauses, chunk
jobs, and their words filed as parts of the segment they began in."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.jobs import (
    TRANSCRIBE_CHUNK_JOB,
    TRANSCRIBE_EARLY_JOB,
    TRANSCRIBE_JOB,
    TRANSCRIPTION_JOBS,
)
from core.pcm import wav_samples
from core.settings import Settings
from core.transcript import SegmentTranscript, assemble_words, merge_parts, records_only
from recorder.speech import ChunkAudio, SpeechChunker
from storage.blobs.protocol import sha256_bytes
from storage.stores import Stores
from tests.support.cli import run_cli
from tests.support.media import make_test_video
from tests.support.speech import clip, clip_path
from transcriber.audio import decode
from transcriber.protocol import DecodeOptions, Word

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
        early_pause_seconds=limits.get("early_pause"),
        early_min_seconds=limits.get("early_min", 0.0),
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


def test_early_pieces_are_the_clauses_of_a_chunk_still_open() -> None:
    """The fast pass: each clause ended by a short pause is handed on before its chunk,
    filed with it, and the pieces of one chunk tile it without overlapping."""
    chunks, _ = _chunks("sales_1", early_pause=0.2, early_min=1.5)
    finals = [c for c in chunks if not c.provisional]
    plain, _ = _chunks("sales_1")
    assert [(c.start, c.pcm) for c in finals] == [(c.start, c.pcm) for c in plain]
    pieces = [c for c in chunks if c.provisional]
    assert len(pieces) >= len(finals)
    for piece in pieces:
        # Handed on before the chunk that holds it, and filed where that chunk starts.
        (chunk,) = [c for c in finals if c.start == piece.chunk_start]
        assert chunks.index(piece) < chunks.index(chunk)
        assert chunk.start <= piece.start and piece.start + piece.duration <= (
            chunk.start + chunk.duration + 0.001
        )
        assert piece.duration >= 1.5 and piece.filed_at == chunk.start
    for chunk in finals:
        own = sorted(
            (p.start, p.start + p.duration) for p in pieces if p.chunk_start == chunk.start
        )
        assert all(a[1] <= b[0] + 0.001 for a, b in pairwise(own)), "pieces overlap"
    # A clause ends in a pause: no character said is cut by a piece's end.
    for sentence in clip("sales_1")["sentences"]:
        for char in sentence["chars"]:
            for piece in pieces:
                end = piece.start + piece.duration
                assert not (char["onset"] < end < char["end"] - 0.05), (char, piece.start, end)


class _HeardOptions:
    """A Transcriber at the Protocol's seam: says one word, remembers the options."""

    name = "options-recorder"

    def __init__(self) -> None:
        self.options: list[DecodeOptions] = []

    def transcribe(self, audio: Any, options: DecodeOptions) -> list[Word]:
        self.options.append(options)
        return [Word("好", 0.3, 0.6, 0.9, 0)]


def test_an_early_piece_is_decoded_greedily_until_its_chunk_closes_or_it_waits_too_long(
    stores: Stores,
) -> None:
    from core.pcm import wav_bytes
    from core.timeutil import utc_now
    from storage.models import SpeechChunk
    from transcriber.worker import TranscriptionWorker

    stream = stores.catalog.ensure_stream("live")
    wav = wav_bytes(b"\0\0" * 32000)

    def add(name: str, provisional: bool, said_ago: float) -> SpeechChunk:
        key = f"streams/live/chunks/s/{name}.wav"
        stores.blobs.put_bytes(key, wav)
        return stores.catalog.add_speech_chunk(
            SpeechChunk(
                stream_id=stream.id, seq=0, segment_seq=0,
                starts_at=utc_now() - timedelta(seconds=said_ago + 2), offset=1.0,
                duration=2.0, blob_key=key, sha256=sha256_bytes(wav), provisional=provisional,
            )
        )  # fmt: skip

    heard = _HeardOptions()
    worker = TranscriptionWorker(stores, heard)
    fresh = add("a.early", True, 0.2)
    stale = add("b.early", True, 30.0)  # said 30 s ago: the workers were behind
    assert worker.run_once() is not None and worker.run_once() is not None
    # The fresh piece was decoded greedily and stored as provisional words; the stale one
    # was dropped without decoding.
    # (greedy, and a window of the clause plus 5 s instead of Whisper's 30 s)
    assert [(o.beam_size, o.window_pad) for o in heard.options] == [(1, 5.0)]
    (row,) = stores.catalog.transcripts(stream.id)
    body = SegmentTranscript.from_json(json.loads(row.body))
    assert body.provisional and row.part == fresh.seq + 1
    assert stale.seq + 1 not in {r.part for r in stores.catalog.transcripts(stream.id)}
    # A piece whose chunk was cut before a worker got to it is dropped too; the chunk
    # itself is decoded with the configured beam, and its words are the record.
    late = add("c.early", True, 0.2)
    final = add("c", False, 0.0)
    assert worker.run_once() is not None and worker.run_once() is not None
    assert [(o.beam_size, o.window_pad) for o in heard.options[1:]] == [(None, None)]
    parts = {r.part: r for r in stores.catalog.transcripts(stream.id)}
    assert late.seq + 1 not in parts and final.seq + 1 in parts
    jobs = stores.catalog.jobs(stream.id)
    assert {j.kind for j in jobs} == {TRANSCRIBE_EARLY_JOB, TRANSCRIBE_CHUNK_JOB}
    assert all(j.status == "done" for j in jobs)
    stored = [SegmentTranscript.from_json(json.loads(r.body)) for r in parts.values()]
    assert [t.provisional for t in records_only(stored)] == [False]

    # Behind: a chunk queued 10 s ago is taken before a fresh piece, and the pieces queued
    # as long are dropped undecoded (not left in the backlog).
    from sqlalchemy import update

    from storage.models import Job

    stale = add("e.early", True, 0.2)
    waiting = add("e", False, 0.0)
    fresh = add("f.early", True, 0.2)
    jobs = {j.segment_seq: j for j in stores.catalog.jobs(stream.id) if j.status == "queued"}
    with stores.catalog.session() as s:
        s.execute(
            update(Job)
            .where(Job.id.in_([jobs[stale.seq].id, jobs[waiting.seq].id]))
            .values(created_at=utc_now() - timedelta(seconds=10))
        )
    heard.options.clear()
    first = worker.run_once()
    assert first is not None and first.words == 1  # the chunk, with the configured beam
    assert [o.beam_size for o in heard.options] == [None]
    assert stores.catalog.backlog(*TRANSCRIPTION_JOBS) == 1  # the fresh piece only
    dropped = next(j for j in stores.catalog.jobs(stream.id) if j.segment_seq == stale.seq)
    assert dropped.status == "done" and dropped.audio_seconds == 0.0
    assert worker.run_once() is not None
    assert [o.beam_size for o in heard.options] == [None, 1]
    parts = {r.part for r in stores.catalog.transcripts(stream.id)}
    assert {waiting.seq + 1, fresh.seq + 1} <= parts and stale.seq + 1 not in parts
    # The real-time factor counts the audio each job decoded (2 s each), not the dropped.
    timings = stores.catalog.recent_job_timings(TRANSCRIPTION_JOBS, 50)
    assert [audio for audio, _ in timings] == [2.0] * 4


def test_a_live_source_gets_provisional_words_that_its_chunks_replace(
    home: Path, ffmpeg: str, tmp_path: Path
) -> None:
    """Recorded live (a file played in real time, by a recorder process of its own) while
    this process transcribes: clauses are transcribed before their chunk closes, and
    once every chunk is transcribed the record holds the chunks' words only."""
    from storage.stores import open_stores
    from transcriber.pool import TranscriberPool

    video = make_test_video(ffmpeg, tmp_path / "live.ts", 15.0, audio=clip_path("sales_1"))
    # No piece is dropped for its wait here (the machine may be busy with other tests);
    # the rule itself is tested above.
    wait = {"LIVEWITNESS_EARLY_MAX_WAIT_SECONDS": "120"}
    stores = open_stores(Settings(home=home, early_max_wait_seconds=120))
    pool = TranscriberPool(stores)
    pool.start()
    try:
        result = run_cli(
            home, "record", str(video), "--stream", "live", "--max-duration", "40",
            "--realtime", **wait,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        stream = stores.catalog.get_stream("live")
        deadline = time.monotonic() + 120
        while stores.catalog.backlog(*TRANSCRIPTION_JOBS):
            assert time.monotonic() < deadline, "the transcriber did not drain the queue"
            time.sleep(0.2)
        chunks = stores.catalog.speech_chunks(stream.id)
        finals = [c for c in chunks if not c.provisional]
        pieces = [c for c in chunks if c.provisional]
        assert len(finals) >= 3 and len(pieces) >= 3
        for piece in pieces:
            (chunk,) = [
                c for c in finals
                if c.seq > piece.seq and c.starts_at <= piece.starts_at < c.starts_at
                + timedelta(seconds=c.duration)
            ]  # fmt: skip
            assert chunk.segment_seq == piece.segment_seq
            assert stores.blobs.get_bytes(piece.blob_key).startswith(b"RIFF")
        stored = [
            SegmentTranscript.from_json(json.loads(r.body))
            for r in stores.catalog.transcripts(stream.id)
        ]
        early = [t for t in stored if t.provisional]
        assert early, "no clause was transcribed before its chunk closed"
        assert all(t.words for t in early)
        # The chunks' words replace the pieces': the record and all parts read the same.
        record = assemble_words(records_only(stored))
        assert assemble_words(stored) == record
        assert len(records_only(stored)) == len(finals)
        # and the record is found at its time.
        found = run_cli(home, "search", "全网最低价", "--stream", "live", "--json")
        assert found.returncode == 0, found.stderr
        (hit,) = json.loads(found.stdout)
        onset = next(t["onset"] for t in clip("sales_1")["terms"] if t["text"] == "全网最低价")
        assert abs(hit["match_offset"] - onset) < 1.0
    finally:
        pool.stop()
        pool.join(30)
        stores.close()
