"""OCR workers: claim a segment's OCR job, sample its frames, read their text, chain the
keyframes with text and store the lines (core/screen.py) in the catalog.

Jobs are leased like transcription's (storage/catalog/jobs.py): a heartbeat renews the
lease while frames are read, and a worker that lost its lease chains nothing. A segment
read again (a retried job) keeps the keyframes chained the first time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from core.errors import DiskFullError, LiveWitnessError, NotFoundError, StorageError
from core.holders import holder_gone, holder_id
from core.jobs import OCR_JOB
from core.screen import ReadLine, SampledFrame, ScreenLine, merge_frames
from storage.blob_keys import keyframe_key
from storage.blobs.protocol import sha256_bytes
from storage.catalog import JOBS_QUEUED
from storage.catalog.jobs import LeaseHeartbeat
from storage.chain import StoredKeyframe
from storage.models import Job, Segment, Stream
from storage.scratch import scratch
from storage.stages import note_stage_error
from storage.stores import Stores
from transcriber.ocr.frames import Frame, sample_frames
from transcriber.ocr.protocol import ScreenReader

log = logging.getLogger(__name__)
STAGE = "ocr"


class LeaseLostError(StorageError):
    """Another worker holds the job now: this one's result is not chained."""


@dataclass
class OcrResult:
    stream: str
    seq: int
    frames: int  # sampled and read
    keyframes: int  # of them, with text: stored and chained
    lines: int  # screen-text records
    media_seconds: float
    wall_seconds: float


class OcrWorker:
    def __init__(self, stores: Stores, reader: ScreenReader, name: str | None = None) -> None:
        self.stores = stores
        self.reader = reader
        self.name = name or holder_id()  # host:pid:nonce, as holder_gone reads it

    def run_once(self) -> OcrResult | None:
        """Claim and do one OCR job; None when there is none to take."""
        catalog = self.stores.catalog
        lease = self.stores.settings.job_lease_seconds
        job = catalog.claim_job(OCR_JOB, self.name, lease, holder_gone=holder_gone)
        if job is None:
            return None
        began = time.monotonic()
        try:
            with LeaseHeartbeat(catalog, job, self.name, lease) as heartbeat:
                result = self.read_job(job, heartbeat.lost)
        except DiskFullError as exc:
            catalog.release_job(job.id, self.name, str(exc))  # the machine's fault
            raise
        except LiveWitnessError as exc:
            log.error("job %d failed at %s, attempt %d: %s", job.id, self.name, job.attempts, exc)
            catalog.finish_job(job.id, self.name, error=str(exc))
            return None
        result.wall_seconds = time.monotonic() - began
        rtf = result.media_seconds / result.wall_seconds if result.wall_seconds > 0 else None
        catalog.finish_job(job.id, self.name, audio_seconds=result.media_seconds, rtf=rtf)
        return result

    def run(
        self,
        stop: threading.Event,
        until_empty: bool = False,
        idle_seconds: float = 0.2,
        on_result: Callable[[OcrResult], None] | None = None,
    ) -> None:
        """Follow the queue until ``stop`` (or until it is empty); an unexpected error
        waits (doubling, capped) and tries again, as the transcription workers do."""
        changes = self.stores.catalog.changes
        settings = self.stores.settings
        pause = settings.stage_restart_initial_seconds
        while not stop.is_set():
            seen = changes.count(JOBS_QUEUED)
            try:
                result = self.run_once()
            except Exception as exc:
                log.exception("%s: OCR job loop failed; trying again in %.0f s", self.name, pause)
                note_stage_error(STAGE, f"{type(exc).__name__}: {exc}")
                stop.wait(pause)
                pause = min(pause * 2, settings.stage_restart_max_seconds)
                continue
            pause = settings.stage_restart_initial_seconds
            if result is not None:
                if on_result is not None:
                    on_result(result)
                continue
            if until_empty and self.stores.catalog.backlog(OCR_JOB) == 0:
                return
            changes.wait(JOBS_QUEUED, seen, idle_seconds)

    # -- one segment -----------------------------------------------------------------------
    def read_job(self, job: Job, lost: threading.Event | None = None) -> OcrResult:
        catalog = self.stores.catalog
        stream = catalog.stream_by_id(job.stream_id)
        segment = catalog.segment(job.stream_id, job.segment_seq)
        if segment is None:
            raise NotFoundError(f"segment {job.segment_seq} of {stream.name} is not catalogued")
        frames = self.sample(segment)
        read = [(frame, self.reader.read(frame.jpeg)) for frame in frames]
        if lost is not None and lost.is_set():
            raise LeaseLostError(f"lost the lease of job {job.id} while reading its frames")
        lines = self.keep(stream, segment, read)
        return OcrResult(
            stream=stream.name,
            seq=segment.seq,
            frames=len(frames),
            keyframes=sum(1 for _frame, found in read if found),
            lines=len(lines),
            media_seconds=segment.duration,
            wall_seconds=0.0,
        )

    def sample(self, segment: Segment) -> list[Frame]:
        settings = self.stores.settings
        with scratch(settings, "ocr-") as tmp:
            path = tmp / "segment.ts"
            self.stores.blobs.download(segment.blob_key, path)
            return sample_frames(
                settings.ffmpeg,
                path,
                settings.ocr_every_seconds,
                settings.ocr_scene_threshold,
                settings.ocr_key_frames_only,
            )

    def keep(
        self, stream: Stream, segment: Segment, read: list[tuple[Frame, list[ReadLine]]]
    ) -> list[ScreenLine]:
        """Chain the frames with text (once per segment), then store the lines."""
        catalog = self.stores.catalog
        first = catalog.first_segment(stream.id)
        base = (segment.starts_at - (first or segment).starts_at).total_seconds()
        with_text = [(frame, found) for frame, found in read if found]
        keys = {
            frame.pts: keyframe_key(stream.name, segment.seq, frame.pts, sha256_bytes(frame.jpeg))
            for frame, _found in with_text
        }
        if with_text and catalog.keyframes_entry(stream.id, segment.seq) is None:
            self.stores.chain.append_keyframes(
                stream.id,
                stream.name,
                segment,
                [
                    StoredKeyframe(
                        data=frame.jpeg,
                        pts=frame.pts,
                        at=segment.starts_at + timedelta(seconds=frame.pts),
                    )
                    for frame, _found in with_text
                ],
            )
            if catalog.stream_by_id(stream.id).status != "recording":
                # A stopped stream's head is always signed (verify holds it to that).
                self.stores.chain.sign_head(stream.id, stream.name)
        elif with_text:
            # Read again: the keyframes chained the first time are the record.
            chained = {
                kf.blob_key for kf in catalog.keyframes(stream.id) if kf.segment_seq == segment.seq
            }
            keys = {pts: key for pts, key in keys.items() if key in chained}
        sampled = [
            SampledFrame(
                at=segment.starts_at + timedelta(seconds=frame.pts),
                offset=round(base + frame.pts, 3),
                keyframe_key=keys.get(frame.pts, ""),
                lines=tuple(found) if frame.pts in keys or not found else (),
            )
            for frame, found in read
        ]
        lines = merge_frames(stream.name, segment.seq, sampled)
        catalog.replace_screen_text(stream.id, segment.seq, lines)
        return lines
