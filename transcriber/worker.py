"""Transcription workers: claim a segment's job, decode it with context, store its words.

Segment N is decoded with the last ``context_seconds`` of segment N-1 in front of it (when
the two are contiguous). Words that start inside N are N's own. Words that start in the
last ``handover_seconds`` of N-1 are stored too, marked as context: N heard them with what
follows, N-1 did not, so readers take them from N. A phrase that crosses the boundary is
thus heard whole and kept exactly once (the rule and its records: :mod:`core.transcript`).
Times are absolute, from the segment's wall-clock anchor.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from core.errors import (
    DiskFullError,
    ImmutableBlobError,
    IntegrityError,
    LiveWitnessError,
    NotFoundError,
    disk_full_error,
    is_disk_full,
)
from core.holders import holder_gone, holder_id
from core.jobs import (
    TRANSCRIBE_CHUNK_JOB,
    TRANSCRIBE_EARLY_JOB,
    TRANSCRIBE_JOB,
    TRANSCRIPTION_JOBS,
)
from core.pcm import wav_samples
from core.text import compact, is_hallucination, search_form, to_simplified
from core.timeutil import iso, utc_now
from core.transcript import (
    PART_UTTERANCES,
    SegmentTranscript,
    TranscriptWord,
    handover_start,
    owned_from,
)
from storage.blob_keys import transcript_key
from storage.blobs.protocol import sha256_bytes
from storage.catalog import JOBS_QUEUED
from storage.catalog.jobs import LeaseHeartbeat
from storage.models import Job, Segment, SpeechChunk, Stream, Transcript
from storage.scratch import scratch
from storage.signing import canonical_json
from storage.stages import note_stage_error
from storage.stores import Stores
from transcriber import audio
from transcriber.protocol import SAMPLE_RATE, Audio, Transcriber, Word
from transcriber.vocabulary import decode_options

log = logging.getLogger(__name__)
CONTIGUOUS_SECONDS = 0.5
REPEAT_LIMIT = 2  # the same line more often than this in one segment is a decoding loop
# Lines the decoder invents in pauses ("作词", "请问您的计划") come with a mean word
# probability near 0.2; real speech, even misheard, measured above 0.6 on our fixtures.
MIN_MEAN_PROBABILITY = 0.4
LOOP_RUN = 8  # this many times the same word in a row is a loop; 哈哈哈哈 and 零零零零 are speech


@dataclass
class JobResult:
    stream: str
    seq: int
    words: int
    audio_seconds: float
    wall_seconds: float


class TranscriptionWorker:
    def __init__(
        self,
        stores: Stores,
        transcriber: Transcriber,
        name: str | None = None,
        use_vocabulary: bool | None = None,
    ) -> None:
        self.stores = stores
        self.transcriber = transcriber
        self.name = name or holder_id()  # host:pid:nonce, as holder_gone reads it
        # The last segment this worker decoded: usually the next job's context, so its
        # tail need not be downloaded and decoded again.
        self._last_audio: tuple[int, int, Audio] | None = None
        self.use_vocabulary = (
            stores.settings.whisper_vocabulary if use_vocabulary is None else use_vocabulary
        )

    # -- the job loop ----------------------------------------------------------------------
    def run_once(self) -> JobResult | None:
        """Claim and do one job; None when there is no job to take."""
        settings = self.stores.settings
        catalog = self.stores.catalog
        lease = settings.job_lease_seconds
        job = None
        for kind in self._claim_order():
            job = catalog.claim_job(kind, self.name, lease, holder_gone=holder_gone)
            if job is not None:
                break
        if job is None:
            return None
        began = time.monotonic()
        try:
            # The lease is short so that a dead worker's job is soon retaken; the
            # heartbeat keeps it while this worker is alive and decoding.
            with LeaseHeartbeat(catalog, job, self.name, lease):
                result = self.transcribe_job(job)
        except (DiskFullError, OSError) as exc:
            if not isinstance(exc, DiskFullError) and not is_disk_full(exc):
                raise
            # The machine's fault, not the job's: queued again without counting the
            # attempt; run() waits before claiming again.
            failure = exc if isinstance(exc, DiskFullError) else disk_full_error(exc, ".")
            catalog.release_job(job.id, self.name, str(failure))
            raise failure from None
        except LiveWitnessError as exc:
            log.error("job %d failed at %s, attempt %d: %s", job.id, self.name, job.attempts, exc)
            catalog.finish_job(job.id, self.name, error=str(exc))
            return None
        wall = time.monotonic() - began
        result.wall_seconds = wall
        rtf = result.audio_seconds / wall if wall > 0 else None
        catalog.finish_job(job.id, self.name, audio_seconds=result.audio_seconds, rtf=rtf)
        return result

    def _claim_order(self) -> tuple[str, ...]:
        """Early pieces first (a clause said a moment ago), then chunks, then segments;
        but chunks first once one has waited ``early_max_wait_seconds``: the workers are
        behind, and the fast pass gives way to the record (its pieces then go stale and
        are dropped, so an overloaded worker falls back to chunks alone)."""
        catalog = self.stores.catalog
        queued = catalog.oldest_queued(TRANSCRIBE_CHUNK_JOB)
        limit = timedelta(seconds=self.stores.settings.early_max_wait_seconds)
        now = utc_now()
        if queued is not None and now - queued > limit:
            # The pieces queued as long are stale by now: dropped, not left in the backlog.
            dropped = catalog.drop_queued(TRANSCRIBE_EARLY_JOB, now - limit)
            if dropped:
                log.info("%s: behind; %d early pieces dropped", self.name, dropped)
            return (TRANSCRIBE_CHUNK_JOB, TRANSCRIBE_EARLY_JOB, TRANSCRIBE_JOB)
        return TRANSCRIPTION_JOBS

    def run(
        self,
        stop: threading.Event,
        until_empty: bool = False,
        idle_seconds: float = 0.2,
        on_result: Callable[[JobResult], None] | None = None,
    ) -> None:
        changes = self.stores.catalog.changes
        settings = self.stores.settings
        pause = settings.stage_restart_initial_seconds
        while not stop.is_set():
            seen = changes.count(JOBS_QUEUED)
            try:
                result = self.run_once()
            except Exception as exc:
                # Supervision at the job level: a full disk or an unexpected error waits
                # (doubling, capped) and tries again, so the worker resumes by itself once
                # the cause is gone; a job left running is retaken when its lease ends.
                if isinstance(exc, DiskFullError):
                    log.error("%s: %s; trying again in %.0f s", self.name, exc, pause)
                else:
                    log.exception("%s: job loop failed; trying again in %.0f s", self.name, pause)
                note_stage_error("transcriber", f"{type(exc).__name__}: {exc}")
                stop.wait(pause)
                pause = min(pause * 2, settings.stage_restart_max_seconds)
                continue
            pause = settings.stage_restart_initial_seconds
            if result is not None:
                if on_result is not None:
                    on_result(result)
                continue
            if until_empty and self.stores.catalog.backlog(*TRANSCRIPTION_JOBS) == 0:
                return
            changes.wait(JOBS_QUEUED, seen, idle_seconds)

    # -- one segment -----------------------------------------------------------------------
    def transcribe_job(self, job: Job) -> JobResult:
        if job.kind in (TRANSCRIBE_CHUNK_JOB, TRANSCRIBE_EARLY_JOB):
            return self.transcribe_chunk_job(job)
        catalog = self.stores.catalog
        stream = catalog.stream_by_id(job.stream_id)
        segment = catalog.segment(job.stream_id, job.segment_seq)
        if segment is None:
            raise NotFoundError(f"segment {job.segment_seq} of {stream.name} is not catalogued")
        transcript = self.transcribe_segment(stream, segment)
        self._store(stream, segment, transcript)
        return JobResult(
            stream=stream.name,
            seq=segment.seq,
            words=len(transcript.words),
            audio_seconds=segment.duration,
            wall_seconds=0.0,
        )

    # -- one speech chunk ------------------------------------------------------------------
    def transcribe_chunk_job(self, job: Job) -> JobResult:
        catalog = self.stores.catalog
        stream = catalog.stream_by_id(job.stream_id)
        chunk = catalog.speech_chunk(job.stream_id, job.segment_seq)
        if chunk is None:
            raise NotFoundError(f"speech chunk {job.segment_seq} of {stream.name} is unknown")
        if chunk.provisional and self._early_too_late(chunk):
            # Its chunk has closed (its transcript is due as soon) or the workers are
            # behind: the fast pass is dropped first. No words: nothing is stored.
            return JobResult(stream.name, chunk.segment_seq, 0, 0.0, 0.0)
        transcript = self.transcribe_chunk(stream, chunk)
        store_transcript(self.stores, stream, chunk.segment_seq, transcript)
        return JobResult(
            stream=stream.name,
            seq=chunk.segment_seq,
            words=len(transcript.words),
            audio_seconds=chunk.duration,
            wall_seconds=0.0,
        )

    def _early_too_late(self, piece: SpeechChunk) -> bool:
        """Whether an early piece is no longer worth decoding: its chunk was cut, or it
        waited longer than ``early_max_wait_seconds`` since its last word was said."""
        said = piece.starts_at + timedelta(seconds=piece.duration)
        waited = (utc_now() - said).total_seconds()
        if waited > self.stores.settings.early_max_wait_seconds:
            return True
        return self.stores.catalog.chunk_closed_after(piece.stream_id, piece.seq)

    def transcribe_chunk(self, stream: Stream, chunk: SpeechChunk) -> SegmentTranscript:
        """A chunk's words, as a part of the segment it began in (core.transcript)."""
        settings = self.stores.settings
        data = self.stores.blobs.get_bytes(chunk.blob_key)
        if sha256_bytes(data) != chunk.sha256:
            raise IntegrityError(chunk.blob_key, "speech chunk does not match its SHA-256")
        samples = wav_samples(data)
        language = stream.language if stream.language else settings.language
        products = self.stores.catalog.products(stream.id)
        options = decode_options(language, products, self.use_vocabulary)
        if chunk.provisional:
            options = replace(
                options,
                beam_size=settings.early_beam_size,
                window_pad=settings.early_window_pad_seconds,
            )
        words = audio.refine_onsets(self.transcriber.transcribe(samples, options), samples)
        part = chunk.seq + 1
        kept = document_words(
            words, chunk.starts_at, chunk.offset, 0.0, chunk.segment_seq, part * PART_UTTERANCES
        )
        text = "".join(w.text for w in kept).strip()
        return SegmentTranscript(
            version=1,
            stream=stream.name,
            segment=chunk.segment_seq,
            segment_sha256="",  # the segment may still be recording; the chunk is named
            segment_start=iso(chunk.starts_at),
            model=self.transcriber.name,
            language=language,
            context_seconds=0.0,
            from_offset=round(chunk.offset, 3),
            text=text,
            search=search_form(text),
            words=tuple(kept),
            part=part,
            chunk_sha256=chunk.sha256,
            provisional=chunk.provisional,
        )

    def transcribe_segment(self, stream: Stream, segment: Segment) -> SegmentTranscript:
        settings = self.stores.settings
        catalog = self.stores.catalog
        previous = catalog.segment(stream.id, segment.seq - 1) if segment.seq > 0 else None
        samples = self._decode(segment)
        context = np.zeros(0, dtype=np.float32)
        if previous is not None and settings.context_seconds > 0 and _contiguous(previous, segment):
            context = self._decode(previous)[-int(settings.context_seconds * SAMPLE_RATE) :]
        self._last_audio = (stream.id, segment.seq, samples)
        boundary = len(context) / SAMPLE_RATE
        language = stream.language if stream.language else settings.language
        options = decode_options(language, catalog.products(stream.id), self.use_vocabulary)
        heard = np.concatenate([context, samples])
        words = audio.refine_onsets(self.transcriber.transcribe(heard, options), heard)
        kept_from = handover_start(boundary, settings.handover_seconds)
        kept = [w for w in words if w.start >= kept_from]
        first = catalog.first_segment(stream.id)
        stream_start = first.starts_at if first is not None else segment.starts_at
        return build_document(
            stream.name,
            segment,
            kept,
            boundary,
            boundary - kept_from,
            stream_start,
            self.transcriber.name,
            language,
        )

    def _decode(self, segment: Segment) -> Audio:
        last = self._last_audio
        if last is not None and last[:2] == (segment.stream_id, segment.seq):
            return last[2]
        with scratch(self.stores.settings, "transcribe-") as tmp:
            path = tmp / "segment.ts"
            self.stores.blobs.download(segment.blob_key, path)
            return audio.decode(self.stores.settings.ffmpeg, path)

    def _store(self, stream: Stream, segment: Segment, transcript: SegmentTranscript) -> None:
        store_transcript(self.stores, stream, segment.seq, transcript)


def store_transcript(
    stores: Stores, stream: Stream, segment_seq: int, transcript: SegmentTranscript
) -> None:
    """Store a transcript (or a part of one) beside its segment (write-once) and copy it
    into the catalog."""
    key = transcript_key(stream.name, segment_seq, transcript.part)
    raw = canonical_json(transcript.to_json())
    try:
        stores.blobs.put_bytes(key, raw)
    except ImmutableBlobError:
        # A worker whose lease ran out stored it first: its transcript is the record.
        raw = stores.blobs.get_bytes(key)
        transcript = SegmentTranscript.from_json(json.loads(raw))
    stores.catalog.add_transcript(
        Transcript(
            stream_id=stream.id,
            segment_seq=segment_seq,
            part=transcript.part,
            blob_key=key,
            language=transcript.language,
            model=transcript.model,
            text=transcript.text,
            body=raw.decode(),
        )
    )


def _cut_loop(group: list[Word]) -> list[Word]:
    """Cut an utterance where the decoder starts repeating one word ("试试试试试…")."""
    for i in range(len(group) - LOOP_RUN + 1):
        texts = {compact(w.text) for w in group[i : i + LOOP_RUN]}
        if len(texts) == 1:
            return group[:i]
    return group


def _contiguous(previous: Segment, segment: Segment) -> bool:
    gap = segment.starts_at - (previous.starts_at + timedelta(seconds=previous.duration))
    return abs(gap.total_seconds()) <= CONTIGUOUS_SECONDS


def build_document(
    stream: str,
    segment: Segment,
    words: list[Word],
    boundary: float,
    handover: float,
    stream_start: Any,
    model: str,
    language: str | None,
) -> SegmentTranscript:
    """The stored transcript: each word with absolute time, stream offset, probability,
    its utterance number and whether it is context (it starts before the segment).
    ``handover`` is how many seconds before the segment's start its words are kept from."""
    base = (segment.starts_at - stream_start).total_seconds()
    out_words = document_words(words, segment.starts_at, base, boundary, segment.seq)
    own_text = "".join(w.text for w in out_words if not w.context).strip()
    return SegmentTranscript(
        version=1,
        stream=stream,
        segment=segment.seq,
        segment_sha256=segment.sha256,
        segment_start=iso(segment.starts_at),
        model=model,
        language=language,
        context_seconds=round(boundary, 3),
        # This transcript's words own the stream from here on (earlier than the segment's
        # start by the handover, when the previous segment was decoded as context).
        from_offset=owned_from(base, handover),
        text=own_text,
        search=search_form(own_text),
        words=tuple(out_words),
    )


def document_words(
    words: list[Word],
    starts_at: datetime,
    base: float,
    boundary: float,
    segment_seq: int,
    first_utterance: int = 0,
) -> list[TranscriptWord]:
    """Decoded words as stored: absolute times from ``starts_at`` (the decoded audio's
    ``boundary`` seconds in), stream offsets from ``base``; decoding loops, invented lines
    and repeats dropped; utterances numbered from ``first_utterance``."""
    groups: dict[int, list[Word]] = {}
    for word in words:
        groups.setdefault(word.utterance, []).append(word)
    out_words: list[TranscriptWord] = []
    seen: dict[str, int] = {}
    for number, looping in enumerate(groups.values()):
        group = _cut_loop(looping)
        if not group:
            continue
        text = to_simplified("".join(w.text for w in group)).strip()
        key = compact(text)
        mean_p = sum(w.probability for w in group) / len(group)
        if is_hallucination(text) or mean_p < MIN_MEAN_PROBABILITY:
            continue
        if seen.get(key, 0) >= REPEAT_LIMIT:
            continue
        seen[key] = seen.get(key, 0) + 1
        for word in group:
            start = word.start - boundary
            end = max(start, word.end - boundary)
            out_words.append(
                TranscriptWord(
                    text=to_simplified(word.text),
                    start=iso(starts_at + timedelta(seconds=start)),
                    end=iso(starts_at + timedelta(seconds=end)),
                    offset=round(base + start, 3),
                    end_offset=round(base + end, 3),
                    probability=round(word.probability, 3),
                    utterance=first_utterance + number,
                    context=start < 0,
                    segment=segment_seq,
                )
            )
    return out_words
