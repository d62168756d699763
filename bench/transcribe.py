"""Transcription figures on the committed Mandarin fixtures (base int8, CPU).

    .venv/bin/python bench/transcribe.py
    .venv/bin/python bench/transcribe.py --variants plain chunks --chunk-mins 3 8  # no vocabulary

- real-time factor of the pipeline (ingest's chained segments through TranscriptionWorker)
  and of faster-whisper called directly on the same audio with the same options, in the
  same run; the difference is the pipeline's overhead;
- the same for speech chunks (issue 15: `speech_chunks`, the default; the recorder cuts
  speech at pauses, recorder/speech.py): the fixtures ingested with chunks on, each chunk
  job through TranscriptionWorker, and faster-whisper called directly on the same chunk
  WAVs (read from the blob store) with the same options;
- character error rate with and without the per-stream vocabulary;
- word-timestamp error: each fixture character's true onset against the word that holds it;
- hit timing: each claim and banned-word hit's matched-word offset (what links and clips
  start at) against the true onset of the phrase in the fixture;
- peak memory (RSS) of the worker process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from core.jobs import TRANSCRIBE_CHUNK_JOB, TRANSCRIBE_JOB
from core.pcm import wav_samples
from core.settings import Settings
from core.transcript import SegmentTranscript, TranscriptWord, assemble_words
from storage.stores import open_stores
from tests.support.media import make_test_video
from tests.support.speech import char_error_rate, clip, clip_path, normal
from transcriber import audio
from transcriber.factory import open_transcriber
from transcriber.worker import TranscriptionWorker

CLIPS = ("sales_1", "sales_2", "boundary")
PRODUCTS = '[{"name":"羽绒服"},{"name":"手镯"},{"name":"面霜"},{"name":"保温杯"}]'
LIVEWITNESS = str(Path(sys.executable).parent / "livewitness")


def ingest(
    home: Path, video: Path, stream: str, products: bool, chunk_min: float | None = None
) -> None:
    """Ingest a fixture video: as 10 s segments to transcribe whole, or (``chunk_min``
    given) with its speech cut into chunks at pauses, chunks of at least ``chunk_min``
    seconds unless the pause is long; OCR off (its jobs are not what is measured)."""
    env = {
        "LIVEWITNESS_HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "LIVEWITNESS_SPEECH_CHUNKS": "false" if chunk_min is None else "true",
        "LIVEWITNESS_OCR_ENABLED": "false",
    }
    if chunk_min is not None:
        env["LIVEWITNESS_CHUNK_MIN_SECONDS"] = str(chunk_min)
        # Cutting at clauses: LIVEWITNESS_CHUNK_PAUSE_SECONDS=0.2 --chunk-mins 1.5
        pause = os.environ.get("LIVEWITNESS_CHUNK_PAUSE_SECONDS")
        if pause:
            env["LIVEWITNESS_CHUNK_PAUSE_SECONDS"] = pause
    if products:
        (home / "p.json").write_text(PRODUCTS)
        subprocess.run(
            [LIVEWITNESS, "products", "set", "--stream", stream, str(home / "p.json")],
            env=env,
            check=True,
            capture_output=True,
        )
    subprocess.run(
        [
            LIVEWITNESS,
            "ingest",
            str(video),
            "--stream",
            stream,
            "--started-at",
            "2026-11-20T12:00:00Z",
            "--no-transcribe",
        ],
        env=env,
        check=True,
        capture_output=True,
    )


def onset_errors(words: list[TranscriptWord], name: str) -> list[float]:
    """For each fixture character, |true onset - onset of the word heard for it|."""
    errors = []
    for sentence in clip(name)["sentences"]:
        for char in sentence.get("chars", []):
            near = [
                w
                for w in words
                if normal(str(char["char"])) in normal(w.text)
                and abs(w.offset - char["onset"]) < 1.0
            ]
            if near:
                errors.append(min(abs(w.offset - char["onset"]) for w in near))
    return errors


def true_onsets(name: str, phrase: str) -> list[float]:
    """Where the fixture says ``phrase`` (its first character's true onset), each time."""
    onsets = []
    for sentence in clip(name)["sentences"]:
        chars = [c for c in sentence.get("chars", []) if normal(str(c["char"]))]
        said = "".join(normal(str(c["char"])) for c in chars)
        at = said.find(normal(phrase))
        while at >= 0:
            onsets.append(float(chars[at]["onset"]))
            at = said.find(normal(phrase), at + 1)
    return onsets


def hit_timing(stores: Any, name: str, stream_name: str) -> tuple[int, int, list[float]]:
    """(hits, hits within 0.5 s of a true onset, errors) for the claim and banned-word
    hits of a transcribed fixture stream, found as the indexer finds them."""
    from compliance.matcher import load_lexicon, matcher_for
    from indexer.documents import utterance_docs

    stream = stores.catalog.get_stream(stream_name)
    stored = [
        SegmentTranscript.from_json(json.loads(t.body))
        for t in stores.catalog.transcripts(stream.id)
    ]
    joined = replace(stored[0], words=tuple(assemble_words(stored)))
    products = stores.catalog.products(stream.id)
    matcher = matcher_for(load_lexicon(stores.settings.lexicon_path))
    docs = utterance_docs(joined, None, products, banned_words=matcher)
    found: list[tuple[str, float]] = [(c.phrase, c.offset) for d in docs for c in d.claims]
    found += [(str(b["term"]), float(b["offset"])) for d in docs for b in d.banned]
    errors, close = [], 0
    for phrase, offset in found:
        onsets = true_onsets(name, phrase)
        error = min((abs(offset - o) for o in onsets), default=float("inf"))
        errors.append(error)
        close += error <= 0.5
        if error > 0.5:
            print(f"  {stream_name}: {phrase!r} at {offset:.2f}s, said at {onsets}")
    return len(found), close, errors


def product_recall(stores: Any, stream_name: str, name: str, fuzzy_min: int) -> tuple[int, int]:
    """(times the fixture names one of PRODUCTS, of them the utterances that mention it
    found) for a transcribed fixture stream, with fuzzy mentions from ``fuzzy_min``
    syllables (0: none)."""
    from indexer.documents import FuzzyMatching, utterance_docs
    from storage.products import parse_products

    products = parse_products(json.loads(PRODUCTS))
    said = sum(normal(clip(name)["text"]).count(p.name) for p in products)
    stream = stores.catalog.get_stream(stream_name)
    stored = [
        SegmentTranscript.from_json(json.loads(t.body))
        for t in stores.catalog.transcripts(stream.id)
    ]
    joined = replace(stored[0], words=tuple(assemble_words(stored)))
    docs = utterance_docs(joined, None, products, fuzzy=FuzzyMatching.of(fuzzy_min, False))
    return said, sum(len(d.products) for d in docs)


DIRECT_OPTIONS: dict[str, Any] = {
    # What transcriber/faster_whisper_backend.py passes, without a vocabulary.
    "language": "zh",
    "beam_size": 5,
    "word_timestamps": True,
    "condition_on_previous_text": False,
    "vad_filter": True,
    "temperature": (0.0, 0.4, 0.8),
    "vad_parameters": {"min_silence_duration_ms": 500, "speech_pad_ms": 300},
}


def transcribe_variant(stores: Any, transcriber: Any, variant: str) -> dict[str, Any]:
    """Run every transcription job of the variant's streams through the worker (as a
    worker claims them); the real-time factor, character error rate and onset error."""
    worker = TranscriptionWorker(stores, transcriber, use_vocabulary=variant == "vocab")
    chunked = variant.startswith("chunks")
    kind = TRANSCRIBE_CHUNK_JOB if chunked else TRANSCRIBE_JOB
    audio_s = wall = direct_wall = 0.0
    jobs = 0
    for name in CLIPS:
        stream = stores.catalog.get_stream(f"{name}-{variant}")
        for job in stores.catalog.jobs(stream.id, kind):
            began = time.perf_counter()
            if chunked:
                result = worker.transcribe_chunk_job(job)
                audio_s += result.audio_seconds
                wall += time.perf_counter() - began
                # faster-whisper directly on the same chunk WAV (read outside the timing),
                # right after the worker's job: both see the machine in the same state.
                chunk = stores.catalog.speech_chunk(stream.id, job.segment_seq)
                samples = wav_samples(stores.blobs.get_bytes(chunk.blob_key))
                began = time.perf_counter()
                list(transcriber.model.transcribe(samples, **DIRECT_OPTIONS)[0])
                direct_wall += time.perf_counter() - began
            else:
                segment = stores.catalog.segment(stream.id, job.segment_seq)
                assert segment is not None
                worker._store(stream, segment, worker.transcribe_segment(stream, segment))
                audio_s += segment.duration
                wall += time.perf_counter() - began
            jobs += 1
    cers, errs = [], []
    for name in CLIPS:
        stream = stores.catalog.get_stream(f"{name}-{variant}")
        stored = [
            SegmentTranscript.from_json(json.loads(t.body))
            for t in stores.catalog.transcripts(stream.id)
        ]
        words = assemble_words(stored)
        cers.append(char_error_rate("".join(w.text for w in words), clip(name)["text"]))
        errs += onset_errors(words, name)
    return {
        "audio": audio_s,
        "wall": wall,
        "direct_wall": direct_wall,  # chunks: faster-whisper directly on each chunk WAV
        "jobs": jobs,
        "cer": float(np.mean(cers)),
        "cer_by_clip": [round(c, 3) for c in cers],
        "onset_mean": float(np.mean(errs)),
        "onset_p95": float(np.percentile(errs, 95)),
        "chars": len(errs),
    }


def direct_segments(model: Any, ffmpeg: str) -> tuple[float, float]:
    """faster-whisper directly on the fixtures in 10 s pieces with 3 s of context, as the
    segment path decodes them: (audio seconds, wall seconds)."""
    began = time.perf_counter()
    direct_audio = 0.0
    for name in CLIPS:
        samples = audio.decode(ffmpeg, clip_path(name))
        direct_audio += len(samples) / 16000
        for start in range(0, len(samples), 160000):
            lo = max(0, start - 3 * 16000)
            segs, _ = model.transcribe(samples[lo : start + 160000], **DIRECT_OPTIONS)
            list(segs)
    return direct_audio, time.perf_counter() - began


def overhead(pipeline: dict[str, Any], direct_audio: float, direct_wall: float) -> float:
    """The pipeline's seconds per audio second over the direct call's, minus 1 (percent)."""
    ours = float(pipeline["wall"]) / float(pipeline["audio"])
    theirs = direct_wall / direct_audio
    return 100 * (ours - theirs) / theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=("vocab", "plain", "chunks"),
        default=["vocab", "plain", "chunks"],
        help="vocab/plain: 10 s segments with/without the vocabulary; chunks: speech chunks",
    )
    parser.add_argument(
        "--chunk-mins",
        type=float,
        nargs="+",
        default=[Settings.model_fields["chunk_min_seconds"].default],
        help="settings.chunk_min_seconds of the chunk variants (one variant each)",
    )
    args = parser.parse_args()
    chunk_mins = {f"chunks{m:g}": float(m) for m in args.chunk_mins}
    variants: list[str] = [
        v for variant in args.variants for v in (chunk_mins if variant == "chunks" else [variant])
    ]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        settings = Settings(home=home)
        for name in CLIPS:
            video = make_test_video(
                settings.ffmpeg,
                Path(tmp) / f"{name}.mp4",
                clip(name)["duration_s"],
                audio=clip_path(name),
            )
            for variant in variants:
                ingest(
                    home,
                    video,
                    f"{name}-{variant}",
                    products=variant == "vocab",
                    chunk_min=chunk_mins.get(variant),
                )
        stores = open_stores(settings)
        transcriber = open_transcriber(stores)
        warm = np.zeros(16000, dtype=np.float32)
        transcriber.transcribe(warm, __import__("transcriber.protocol").protocol.DecodeOptions())
        results = {
            variant: transcribe_variant(stores, transcriber, variant) for variant in variants
        }
        model = transcriber.model  # type: ignore[attr-defined]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        for variant, r in results.items():
            print(
                f"pipeline ({variant}): {r['jobs']} jobs, {r['audio']:.1f}s audio in"
                f" {r['wall']:.1f}s = {r['audio'] / r['wall']:.2f}x real time; CER {r['cer']:.3f}"
                f" (by clip {r['cer_by_clip']}); word onset error mean {r['onset_mean']:.3f}s"
                f" p95 {r['onset_p95']:.3f}s over {r['chars']} chars"
            )
        if "plain" in results:
            # faster-whisper directly on the same audio (10 s pieces + 3 s context), same
            # options as the default segment path (no vocabulary).
            direct_audio, direct_wall = direct_segments(model, settings.ffmpeg)
            print(
                f"faster-whisper direct, 10 s pieces: {direct_audio:.1f}s audio in"
                f" {direct_wall:.1f}s = {direct_audio / direct_wall:.2f}x real time"
            )
            print(
                "pipeline overhead (segments, no vocabulary):"
                f" {overhead(results['plain'], direct_audio, direct_wall):.1f}%"
            )
        fixtures = sum(float(clip(name)["duration_s"]) for name in CLIPS)
        for variant in chunk_mins:
            r = results[variant]
            chunk_audio, chunk_wall = r["audio"], r["direct_wall"]
            print(
                f"{variant}: faster-whisper direct on the same chunk WAVs: {chunk_audio:.1f}s"
                f" audio in {chunk_wall:.1f}s = {chunk_audio / chunk_wall:.2f}x real time;"
                f" pipeline overhead {overhead(r, chunk_audio, chunk_wall):.1f}%"
            )
        for variant, r in results.items():
            # Capacity: seconds of stream (speech and pauses) one worker keeps up with
            # per second; segments decode 3 s of context more, chunks only speech.
            print(
                f"{variant}: {fixtures:.1f}s of stream transcribed in {r['wall']:.1f}s ="
                f" {fixtures / r['wall']:.2f} streams per busy worker"
            )
        for variant in [v for v in ("plain", "vocab", *chunk_mins) if v in results]:
            hits = close = 0
            timing_errors: list[float] = []
            for name in CLIPS:
                n, ok, errs = hit_timing(stores, name, f"{name}-{variant}")
                hits, close = hits + n, close + ok
                timing_errors += [e for e in errs if e != float("inf")]
            print(
                f"claim and banned-word hits ({variant}): {close}/{hits} ="
                f" {close / max(hits, 1):.1%} start within 0.5 s of the phrase's true onset;"
                f" error mean {float(np.mean(timing_errors)):.3f}s"
                f" p95 {float(np.percentile(timing_errors, 95)):.3f}s"
                " (a hit whose phrase the fixture never says counts as outside)"
            )
        if "plain" in results:
            for bound in (0, 3, 2):
                said = found = 0
                for name in CLIPS:
                    n, f = product_recall(stores, f"{name}-plain", name, bound)
                    said, found = said + n, found + f
                print(
                    f"product names said {said}, mentions found {found} (no vocabulary,"
                    f" fuzzy from {bound or 'never'} syllables)"
                )
        print(f"peak RSS of this worker process: {peak:.0f} MB")
        stores.close()


if __name__ == "__main__":
    main()
