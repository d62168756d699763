"""Record one live source into the stream's evidence chain.

Each ffmpeg run is a *session* with its own work directory. As ffmpeg closes a segment
the recorder hashes it, stores it, chains it, catalogs it and queues its transcription
(``EvidenceChain.append_segment``), then deletes the local copy. A drop ends the session;
the recorder reconnects with bounded exponential backoff and the time it missed becomes
a gap entry. Sessions left behind by a crash are finished at the next start: listed
segments are chained, a partial one is chained when it decodes and recorded as a gap
when it does not.

The chain tells the time truthfully:

- An HLS source is followed by its own continuity (recorder/hls.py): ffmpeg is fed only
  media sequence numbers the stream has not chained, so media a source lists again is
  never recorded twice, and ``#EXT-X-ENDLIST`` ends the recording.
- A segment's wall-clock place comes from when its media arrived (media time t arrived
  no earlier than it was produced), never before the end of the entry before it, and a
  segment is chained only once its end has passed. Bytes already chained in the stream
  are not chained again.
- A source that is not live (a VOD playlist, a file without ``realtime``, media arriving
  faster than real time) is refused with :class:`NotLiveError`: ``livewitness ingest``
  imports recordings.
- Every recording that stops cleanly (its source ended, a stop, a time limit, an error)
  ends with an ``end`` entry giving the reason, then a signed head; a crash leaves none
  and the next start carries on after a gap.

An *ingest* (``started_at`` given) chains a local file as fast as ffmpeg reads it, at the
given wall-clock start. Its session is named after the file's SHA-256, so a run that was
interrupted is resumed after its last chained segment, and a file ingested whole is
refused the second time.

One recorder per stream: a file lock among the processes of one machine, and a lease in
the catalog among machines (renewed while recording; a crashed holder's lease runs out,
or is taken at once by a recorder on the same machine that sees the holder is gone).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from core.egress import EgressPolicy
from core.errors import (
    ConflictError,
    ImmutableBlobError,
    InvalidInputError,
    LiveWitnessError,
    NotLiveError,
    SourceError,
    StorageError,
    disk_full_error,
    is_disk_full,
)
from core.holders import holder_gone
from core.holders import holder_id as recorder_id
from core.redact import redact_text
from core.settings import Settings
from core.timeutil import iso, utc_now
from recorder.ffmpeg import (
    FfmpegProcess,
    classify_failure,
    is_network_source,
    lacks_audio_for_tap,
    probe_duration,
    probe_file,
    read_segment_list,
    segmenter_command,
)
from recorder.hls import (
    HlsFollower,
    HlsSegment,
    MediaPlaylist,
    is_hls_url,
    media_sequence_of,
    read_fed_log,
    read_opened_log,
    read_playlist,
    select_feed,
)
from recorder.sources import check_network_source
from recorder.speech import AudioTap, ChunkAudio, SpeechChunker
from storage.blob_keys import check_stream_name, speech_chunk_key
from storage.blobs.protocol import sha256_bytes, sha256_file
from storage.chain import (
    TIMELINE_TOLERANCE_SECONDS,
    UNTIMED_KINDS,
    ClosedSegment,
    EvidenceChain,
)
from storage.models import ManifestEntry, Segment, SpeechChunk

log = logging.getLogger(__name__)

GAP_TOLERANCE_SECONDS = 1.0
POLL_SECONDS = 0.1  # how soon a closed segment is noticed (a small file read per stream)
INGEST_PREFIX = "ingest-"  # an ingest's session directory: ingest-<file SHA-256>-<length>s
SOURCE_ENDED = "source ended"
FILE_INGESTED = "file ingested"
# End reasons after which a stream shows "ended" (its source ended) rather than "stopped".
SOURCE_END_REASONS = (SOURCE_ENDED, FILE_INGESTED)


@dataclass
class RecordingSummary:
    stream: str
    segments: int = 0
    gaps: int = 0
    seconds: float = 0.0
    sessions: int = 0
    ended_by: str = ""
    repeated: int = 0  # segments not chained because the stream holds their bytes already
    resumed: int = 0  # segments an interrupted ingest of the same file had chained


@dataclass
class _Session:
    directory: Path
    anchor: datetime | None = None
    anchor_frozen: bool = False
    last_progress: float | None = None  # monotonic time of the last progress report
    media_seconds: float = 0.0
    chained: set[str] = field(default_factory=set)
    opened_at: float = field(default_factory=time.monotonic)  # when ffmpeg started
    # How many seconds media may run ahead of the wall clock; None: not checked (ingest,
    # a session recovered after a crash).
    allowance: float | None = None
    too_fast: str | None = None  # set once media ran ahead: nothing more is chained
    follower: HlsFollower | None = None
    stall_seconds: float = 0.0
    ingest: bool = False
    fed: list[tuple[int, float]] = field(default_factory=list)  # recovered HLS session
    last_opened: int | None = None  # recovered HLS session
    new_segments: int = 0
    tap: AudioTap | None = None  # speech chunks from ffmpeg's PCM pipe
    first_seq: int = 0  # the segment seq its first file gets (speech chunks are filed so)


@dataclass
class _Outcome:
    reason: str  # stopped, max duration, ended, failed, stalled, not live
    detail: str = ""
    new_segments: int = 0
    stderr: list[str] = field(default_factory=list)
    error: SourceError | None = None


class StreamRecorder:
    def __init__(
        self,
        settings: Settings,
        chain: EvidenceChain,
        stream: str,
        source: str,
        *,
        segment_seconds: float | None = None,
        max_duration: float | None = None,
        realtime: bool = False,
        started_at: datetime | None = None,
        on_segment: Callable[[Segment], None] | None = None,
    ) -> None:
        self.settings = settings
        self.chain = chain
        self.stream = check_stream_name(stream)
        self.source = source
        self.segment_seconds = (
            settings.segment_seconds if segment_seconds is None else segment_seconds
        )
        if self.segment_seconds <= 0:
            raise InvalidInputError("segment length must be positive")
        if max_duration is not None and max_duration <= 0:
            raise InvalidInputError("max duration must be positive")
        self.max_duration = max_duration
        self.realtime = realtime
        self.started_at = started_at
        self.on_segment = on_segment
        self.stream_dir = settings.work_dir / stream
        self.summary = RecordingSummary(stream=stream)
        self._stop = threading.Event()
        self._gap_reason = "not recording"
        self._end_reason = ""
        self._stream_id = 0
        self._last_signed = time.monotonic()
        self.holder = recorder_id()
        self._lease_renewed = 0.0
        self._ingest = started_at is not None
        self._hls = not self._ingest and is_hls_url(source)
        self._connected = False  # the source answered at least once in this run
        self._first_read = True  # no HLS playlist read yet in this run
        self._ingest_session = ""
        self._resume_captures: set[str] = set()
        self._head_before: int | None = None  # the chain's last entry when this run began
        self._failure: str | None = None  # why storage failed under this run, if it did
        # Speech goes to transcription as chunks cut at pauses (off: a source without audio).
        self._tap_audio = settings.speech_chunks

    def stop(self) -> None:
        self._stop.set()

    # -- the main loop --------------------------------------------------------------------
    def run(self) -> RecordingSummary:
        self.stream_dir.mkdir(parents=True, exist_ok=True)
        with _StreamLock(self.stream_dir / ".lock", self.stream):
            catalog = self.chain.catalog
            self._stream_id = catalog.ensure_stream(self.stream, self.source).id
            self._take_lease()
            try:
                self.chain.open_stream(self.stream, self.source)
                self._refuse_a_file_as_live()
                before = catalog.stream_by_id(self._stream_id).status
                head = catalog.head(self._stream_id)
                self._head_before = None if head is None else head.idx
                catalog.set_status(self._stream_id, "recording")
                try:
                    self._work()
                except LiveWitnessError as exc:
                    # The end reason is chained and exported: never a credential in it.
                    reason = redact_text(f"error: {exc}", self.source)
                    self._end_reason = self._end_reason or reason
                    if isinstance(exc, StorageError):  # e.g. a full disk: not "recording"
                        self._failure = reason
                    raise
                finally:
                    self._close(before)
            finally:
                catalog.release_recording(self._stream_id, self.holder)
        return self.summary

    def _work(self) -> None:
        try:
            self._recover_leftovers()
            if self._ingest:
                self._plan_ingest()
            self._record()
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            raise disk_full_error(exc, self.settings.home) from None

    def _close(self, status_before: str) -> None:
        """End the session in the chain (unless it ended there already), sign the head and
        say in the catalog how the stream stands. A run that added nothing (a refusal)
        leaves the chain as it was, unless it closes a session a crash left open."""
        if self.summary.ended_by == "taken over":
            return  # the chain is another recorder's to write now
        catalog = self.chain.catalog
        head = catalog.head(self._stream_id)
        added = (None if head is None else head.idx) != self._head_before
        if self._failure is not None:
            catalog.note_recording_error(self._stream_id, self._failure)
        if not added and (status_before != "recording" or self._failure is not None):
            catalog.set_status(self._stream_id, "failed" if self._failure else status_before)
            return
        # Where the timeline stands: keyframes and events other stages chained meanwhile
        # claim no time and end no session.
        head = _timed_head(catalog.entries(self._stream_id)) if head is not None else None
        try:
            if head is not None and head.kind != "end":
                reason = self._end_reason or self.summary.ended_by or "stopped"
                self.chain.append_end(self._stream_id, self.stream, reason, head.ends_at)
                head = catalog.head(self._stream_id)
            self.chain.sign_head(self._stream_id, self.stream)
        except (LiveWitnessError, OSError) as exc:  # a full disk may refuse the end too
            log.error("%s: could not end the recording in the chain: %s", self.stream, exc)
        finally:
            status = "failed" if self._failure else _status_after(head, status_before)
            catalog.set_status(self._stream_id, status)

    def _refuse_a_file_as_live(self) -> None:
        """A local file read as fast as it goes is a recording: refused at once."""
        if self._ingest or self.realtime or is_network_source(self.source):
            return
        probe = probe_file(self.settings.ffmpeg, Path(self.source))
        if not probe.has_media:
            raise classify_failure(self.source, probe.stderr_lines)
        raise NotLiveError(
            f"{self.source} is a file, not a live source: import it with `livewitness"
            " ingest`, or give --realtime to play it as if live"
        )

    # -- the catalog lease ----------------------------------------------------------------
    def _take_lease(self) -> None:
        catalog, lease = self.chain.catalog, self.settings.recorder_lease_seconds
        if not catalog.hold_recording(self._stream_id, self.holder, lease):
            stream = catalog.stream_by_id(self._stream_id)
            holder = stream.recorder or ""
            if not (
                holder_gone(holder)
                and catalog.hold_recording(self._stream_id, self.holder, lease, replacing=holder)
            ):
                until = stream.recorder_lease_until
                raise ConflictError(
                    f"stream {self.stream!r} is being recorded by {holder}"
                    + (f" (its lease runs to {iso(until)})" if until else "")
                )
        self._lease_renewed = time.monotonic()

    def _keep_lease(self) -> None:
        """Renew the lease a third of the way through; stop if another recorder took it."""
        lease = self.settings.recorder_lease_seconds
        if time.monotonic() - self._lease_renewed < lease / 3:
            return
        try:
            held = self.chain.catalog.hold_recording(self._stream_id, self.holder, lease)
        except (StorageError, SQLAlchemyError) as exc:
            log.warning("%s: could not renew the recording lease: %s", self.stream, exc)
            return
        if held:
            self._lease_renewed = time.monotonic()
            return
        log.error("%s: another recorder took the stream over; stopping", self.stream)
        self.summary.ended_by = "taken over"
        self._stop.set()

    def _pause(self, seconds: float) -> bool:
        """Wait (keeping the lease); True when asked to stop meanwhile."""
        ends = time.monotonic() + seconds
        while not self._stop.is_set():
            self._keep_lease()
            left = ends - time.monotonic()
            if left <= 0:
                return False
            self._stop.wait(min(left, self.settings.recorder_lease_seconds / 6))
        return True

    def _record(self) -> None:
        began = time.monotonic()
        deadline = None if self.max_duration is None else began + self.max_duration
        backoff = self.settings.reconnect_initial_seconds
        down_since: float | None = None
        while not self._stop.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self.summary.ended_by = "max duration"
                return
            outcome = self._run_session(remaining)
            if outcome.new_segments:
                # Only new media counts as the source being back: a source that merely
                # answers (replaying what it sent before) does not reset the backoff.
                down_since = None
                backoff = self.settings.reconnect_initial_seconds
            if outcome.reason in ("stopped", "max duration"):
                self.summary.ended_by = self.summary.ended_by or outcome.reason
                return
            if outcome.reason == "ended":
                self.summary.ended_by = FILE_INGESTED if self._ingest else SOURCE_ENDED
                return
            if outcome.reason == "not live":
                detail = redact_text(outcome.detail, self.source)
                self._end_reason = f"source is not live: {detail}"
                raise NotLiveError(
                    f"{self.source} is not a live source ({outcome.detail}): import a"
                    " recording with `livewitness ingest`"
                )
            if self._ingest or not self._connected or not is_network_source(self.source):
                raise outcome.error or classify_failure(
                    self.source, outcome.stderr or [outcome.detail]
                )
            # A live source dropped: wait, then reconnect; the missed time becomes a gap
            # (whose reason is why it dropped, not why a reconnect failed).
            if down_since is None:
                self._gap_reason = f"source dropped: {redact_text(outcome.detail, self.source)}"
                down_since = time.monotonic()
            if time.monotonic() - down_since > self.settings.reconnect_give_up_seconds:
                self.summary.ended_by = "source down too long"
                return
            log.warning(
                "%s: source down: %s; reconnecting in %.1fs",
                self.stream,
                redact_text(outcome.detail, self.source),
                backoff,
            )
            if self._pause(backoff):
                self.summary.ended_by = self.summary.ended_by or "stopped"
                return
            backoff = min(backoff * 2, self.settings.reconnect_max_seconds)

    def _run_session(self, remaining: float | None) -> _Outcome:
        outcome = self._hls_session(remaining) if self._hls else self._direct_session(remaining)
        if self._tap_audio and not outcome.new_segments and lacks_audio_for_tap(outcome.stderr):
            # ffmpeg refuses an output with nothing to write: video without audio.
            log.info("%s: the source has no audio track: no speech chunks", self.stream)
            self._tap_audio = False
            return self._run_session(remaining)
        return outcome

    def _new_session(self) -> _Session:
        name = self._ingest_session or utc_now().strftime("%Y%m%dT%H%M%S%f")
        directory = self.stream_dir / name
        directory.mkdir(parents=True, exist_ok=self._ingest)
        session = _Session(directory=directory, ingest=self._ingest)
        session.stall_seconds = self.settings.stall_timeout_seconds
        session.first_seq = self._first_seq_of(directory.name)
        if self._ingest:
            assert self.started_at is not None
            session.anchor, session.anchor_frozen = self.started_at, True
            session.chained |= self._resume_captures  # chained by the interrupted run
            _write_anchor(session)
        else:
            session.allowance = self.settings.live_lead_seconds
        self.summary.sessions += 1
        return session

    def _direct_session(self, remaining: float | None) -> _Outcome:
        """ffmpeg reads the source itself: a file, RTMP, HTTP-FLV, SRT, ..."""
        if is_network_source(self.source):
            # The egress policy at every connect: the name may point elsewhere by now.
            try:
                check_network_source(self.source, self.settings)
            except SourceError as exc:  # it does not resolve (now): like a refused connect
                if not self._connected:
                    raise
                return _Outcome("failed", str(exc), error=exc)
        session = self._new_session()
        audio_fd, read_fd = self._open_tap()
        command = segmenter_command(
            self.settings.ffmpeg,
            self.source,
            session.directory,
            self.segment_seconds,
            self.realtime,
            self.settings.connect_timeout_seconds,
            audio_fd=audio_fd,
        )
        process = self._start_ffmpeg(session, command, audio_fd, read_fd)
        session.opened_at = time.monotonic()
        why = self._supervise(session, process, remaining)
        code = process.wait()
        self._end_tap(session)
        self._finish_session(session)
        if session.too_fast is not None:
            why = "not live"
        elif why == "exited":
            # A live source that closes (RTMP, HTTP-FLV) or a file at its end exits 0.
            why = "ended" if code == 0 else "failed"
        return _Outcome(
            why,
            session.too_fast or process.error_line(),
            session.new_segments,
            list(process.stderr_tail),
        )

    def _hls_session(self, remaining: float | None) -> _Outcome:
        """ffmpeg reads a local copy of the source's playlist that the recorder keeps."""
        began = time.monotonic()
        found = self._hls_feed(remaining)
        if isinstance(found, _Outcome):
            return found
        playlist, feed = found
        session = self._new_session()
        follower = HlsFollower(
            self.source,
            playlist,
            feed,
            session.directory,
            timeout=self.settings.connect_timeout_seconds,
            stall_seconds=self.settings.stall_timeout_seconds,
            policy=EgressPolicy.for_settings(self.settings, sources=True),
        )
        session.follower = follower
        session.stall_seconds = follower.stall_seconds
        # The listed backlog is read at once when ffmpeg starts: that much lead is allowed.
        session.allowance = self.settings.live_lead_seconds + follower.backlog_seconds
        audio_fd, read_fd = self._open_tap()
        command = segmenter_command(
            self.settings.ffmpeg,
            self.source,
            session.directory,
            self.segment_seconds,
            False,
            self.settings.connect_timeout_seconds,
            follow=follower.path,
            audio_fd=audio_fd,
        )
        process = self._start_ffmpeg(session, command, audio_fd, read_fd, follower.note_log)
        session.opened_at = time.monotonic()
        follower.start()
        left = None if remaining is None else remaining - (time.monotonic() - began)
        why = self._supervise(session, process, left)
        follower.close()
        process.wait()
        self._end_tap(session)
        self._finish_session(session)
        if session.too_fast is not None:
            why = "not live"
        elif why == "exited":
            why = "ended" if follower.source_ended else "failed"
        detail = session.too_fast or follower.problem or process.error_line()
        return _Outcome(why, detail, session.new_segments, list(process.stderr_tail))

    def _hls_feed(
        self, remaining: float | None
    ) -> tuple[MediaPlaylist, list[HlsSegment]] | _Outcome:
        """Read the playlist until it lists media this stream has not chained."""
        began = time.monotonic()
        last_seq = self.chain.last_media_sequence(self._stream_id, self.stream)
        while True:
            try:
                playlist = read_playlist(
                    self.source,
                    self.settings.connect_timeout_seconds,
                    EgressPolicy.for_settings(self.settings, sources=True),
                )
            except SourceError as exc:
                if not self._connected:
                    raise
                return _Outcome("failed", str(exc), error=exc)
            first_read, self._first_read = self._first_read, False
            feed = select_feed(playlist, last_seq)
            if playlist.ended or playlist.vod:
                if feed and first_read:
                    return _Outcome(
                        "not live",
                        "a VOD playlist"
                        if playlist.vod
                        else "its playlist has ended (#EXT-X-ENDLIST)",
                    )
                return _Outcome("ended", "the playlist has ended")
            if feed:
                return playlist, feed
            # Live, but nothing after what the stream holds yet: wait for what comes next.
            waited = time.monotonic() - began
            patience = max(self.settings.stall_timeout_seconds, 3 * playlist.target_duration)
            if remaining is not None and waited >= remaining:
                return _Outcome("max duration")
            if waited > patience:
                return _Outcome("stalled", f"no new segment for {patience:.0f}s")
            if self._pause(min(max(playlist.target_duration / 2, 0.5), 2.0)):
                return _Outcome("stopped")

    # -- speech chunks (recorder/speech.py) -----------------------------------------------
    def _open_tap(self) -> tuple[int | None, int | None]:
        """The pipe ffmpeg writes 16 kHz PCM to (write end, read end), when tapping."""
        if not self._tap_audio:
            return None, None
        read_fd, write_fd = os.pipe()
        return write_fd, read_fd

    def _start_ffmpeg(
        self,
        session: _Session,
        command: list[str],
        audio_fd: int | None,
        read_fd: int | None,
        on_log: Callable[[str], None] | None = None,
    ) -> FfmpegProcess:
        try:
            process = FfmpegProcess(
                command,
                lambda t: self._progress(session, t),
                on_log,
                pass_fds=() if audio_fd is None else (audio_fd,),
            )
        except BaseException:
            for fd in (audio_fd, read_fd):
                if fd is not None:
                    os.close(fd)
            raise
        if audio_fd is not None and read_fd is not None:
            os.close(audio_fd)  # ffmpeg holds it now: the pipe ends when ffmpeg exits
            # The fast pass is for live talk: an ingest is transcribed as fast as it can
            # be, and only its chunks' words are kept.
            chunker = SpeechChunker.of(self.settings, live=not self._ingest)
            session.tap = AudioTap(read_fd, chunker, lambda a: self._store_chunk(session, a))
        return process

    def _end_tap(self, session: _Session) -> None:
        if session.tap is not None:
            session.tap.join(timeout=30)  # its last chunk stored before the session ends

    def _first_seq_of(self, session_name: str) -> int:
        """The seq the session's first file gets: the next one, or (an ingest resumed) the
        one its first file got in the interrupted run."""
        catalog = self.chain.catalog
        first = catalog.segment_by_capture(self._stream_id, f"{session_name}/seg00000000.ts")
        if first is not None:
            return first.seq
        last = catalog.last_segment(self._stream_id)
        return 0 if last is None else last.seq + 1

    def _store_chunk(self, session: _Session, audio: ChunkAudio) -> None:
        """Store a chunk's audio (derived, not evidence), catalogue it and queue it: filed
        under the segment whose file was being written when the chunk began."""
        catalog = self.chain.catalog
        anchor = session.anchor or utc_now() - timedelta(seconds=session.media_seconds)
        starts_at = anchor + timedelta(seconds=audio.start)
        first = catalog.first_segment(self._stream_id)
        origin = first.starts_at if first is not None else anchor  # a new stream starts here
        listed = read_segment_list(session.directory / "segments.csv")
        closed_before = sum(1 for item in listed if item.end <= audio.filed_at + 0.001)
        wav = audio.wav()
        key = speech_chunk_key(self.stream, session.directory.name, audio.start, audio.provisional)
        try:
            self.chain.blobs.put_bytes(key, wav)  # the same bytes again: a resumed ingest
        except ImmutableBlobError:
            log.warning("%s: speech chunk %s was stored with other audio: kept", self.stream, key)
            return
        catalog.add_speech_chunk(
            SpeechChunk(
                stream_id=self._stream_id,
                seq=0,
                segment_seq=session.first_seq + closed_before,
                starts_at=starts_at,
                offset=round((starts_at - origin).total_seconds(), 3),
                duration=round(audio.duration, 3),
                blob_key=key,
                sha256=sha256_bytes(wav),
                provisional=audio.provisional,
            )
        )

    def _supervise(self, session: _Session, process: FfmpegProcess, remaining: float | None) -> str:
        """Chain what ffmpeg closes until it exits; returns why the session ended:
        exited (on its own), stopped, max duration, stalled or not live."""
        opened = time.monotonic()
        ends_at = None if remaining is None else opened + remaining
        follower = session.follower
        asked: str | None = None  # stopped or max duration, once asked
        draining_since: float | None = None
        drain_limit = self.settings.connect_timeout_seconds + 5.0
        if follower is not None:
            drain_limit += follower.target_duration
        while True:
            code = process.poll()
            if code is not None:
                return asked or "exited"
            self._chain_listed(session)
            now = time.monotonic()
            if session.too_fast is not None:
                process.kill()
                return "not live"
            if asked is None and (self._stop.is_set() or (ends_at is not None and now >= ends_at)):
                asked = "stopped" if self._stop.is_set() else "max duration"
                if follower is None:
                    process.stop()
                    return asked
                # ffmpeg reads what it was fed, then exits: the session ends on a whole
                # source segment, so a later session continues exactly after it.
                follower.close()
            if follower is not None and follower.closed and draining_since is None:
                draining_since = now
            if draining_since is not None and now - draining_since > drain_limit:
                process.stop()
                return asked or "exited"
            silent_since = session.last_progress or opened
            limit = (
                session.stall_seconds
                if session.last_progress
                else self.settings.connect_timeout_seconds + session.stall_seconds
            )
            if now - silent_since > limit:
                process.stderr_tail.append(f"no media for {limit:.0f}s")
                process.kill()
                return asked or "stalled"
            if now - self._last_signed > self.settings.sign_interval_seconds:
                self._sign_live_head()
                self._last_signed = now
            self._keep_lease()
            time.sleep(POLL_SECONDS)

    def _sign_live_head(self) -> None:
        try:
            self.chain.sign_head(self._stream_id, self.stream)
        except StorageError as exc:
            # Recording matters more than this signature; the next interval tries again.
            log.warning("%s: could not sign the live head: %s", self.stream, exc)

    def _progress(self, session: _Session, media_seconds: float) -> None:
        wall = utc_now()
        session.last_progress = time.monotonic()
        session.media_seconds = media_seconds
        self._connected = True
        self._check_lead(session, media_seconds)
        if session.anchor_frozen:
            return
        # Media time t arrived no earlier than it was produced, so wall - t bounds the
        # wall time of media 0 from above; the smallest bound seen is the best anchor.
        candidate = wall - timedelta(seconds=media_seconds)
        if session.anchor is None or candidate < session.anchor - timedelta(milliseconds=50):
            session.anchor = candidate
            _write_anchor(session)

    def _check_lead(self, session: _Session, media_seconds: float) -> bool:
        """Whether media runs ahead of the wall clock since ffmpeg started by more than the
        session allows: a recording read faster than real time, not a live source."""
        if session.allowance is None or session.too_fast is not None:
            return session.too_fast is not None
        elapsed = time.monotonic() - session.opened_at
        if media_seconds - elapsed > session.allowance:
            session.too_fast = f"{media_seconds:.1f}s of media arrived in {elapsed:.1f}s"
            log.info("%s: not live: %s", self.stream, session.too_fast)
        return session.too_fast is not None

    def _proving_pace(self, session: _Session) -> bool:
        """Whether a live session is still in its first ``live_lead_seconds``: nothing is
        chained before media has had that long to show it runs ahead of the wall clock
        (a file served over HTTP arrives at once; its first segment would be chained
        before the lead check had seen enough)."""
        if session.allowance is None:
            return False
        return time.monotonic() - session.opened_at < self.settings.live_lead_seconds

    # -- chaining -------------------------------------------------------------------------
    def _chain_listed(self, session: _Session, final: bool = False, wait: bool = True) -> bool:
        """Chain the segments ffmpeg has listed, in order; False while the next one must
        wait (its end is still ahead of the wall clock, or the source is refused)."""
        listed = read_segment_list(session.directory / "segments.csv")
        waiting = [item for item in listed if item.filename not in session.chained]
        # The newest media decides, not the segment in turn: a segment that must wait for
        # its end would otherwise hold back the check of all listed after it.
        if waiting and self._check_lead(session, listed[-1].end):
            return False
        if waiting and wait and self._proving_pace(session):
            return False
        for position, item in enumerate(waiting):
            path = session.directory / item.filename
            if path.exists():
                if self._check_lead(session, item.end):
                    return False
                last = final and position == len(waiting) - 1
                if not self._chain_file(
                    session, path, item.start, item.end - item.start, final=last, wait=wait
                ):
                    return False
            session.chained.add(item.filename)
        return True

    def _chain_file(
        self,
        session: _Session,
        path: Path,
        start: float,
        duration: float,
        recovered: bool = False,
        final: bool = False,
        wait: bool = True,
    ) -> bool:
        """Chain one closed segment; False (nothing done) while its end is still ahead of
        the wall clock."""
        if session.anchor is None:
            session.anchor = utc_now() - timedelta(seconds=start + duration)
        if not session.anchor_frozen:
            self._freeze_anchor(session, start)
        starts_at = session.anchor + timedelta(seconds=start)
        ends_at = starts_at + timedelta(seconds=duration)
        capture = f"{session.directory.name}/{path.name}"
        if self.chain.catalog.segment_by_capture(self._stream_id, capture) is not None:
            path.unlink()  # chained before this process died
            return True
        if session.ingest:
            self._check_ingested_time(starts_at, ends_at)
        elif wait and ends_at > utc_now():
            return False
        sha256 = sha256_file(path)
        earlier = self.chain.chained_media(self._stream_id, sha256)
        if earlier is not None:
            log.warning(
                "%s: %s repeats segment %d (same SHA-256): not chained again",
                self.stream,
                capture,
                earlier.seq,
            )
            path.unlink()
            self.summary.repeated += 1
            return True
        self._record_gap_before(starts_at)
        closed = ClosedSegment(
            path=path,
            sha256=sha256,
            size=path.stat().st_size,
            starts_at=starts_at,
            duration=duration,
            capture=capture,
            recovered=recovered,
            media_sequence=self._media_sequence(session, start, start + duration, final),
            transcribe=session.tap is None,
        )
        segment = self.chain.append_segment(self._stream_id, self.stream, closed)
        path.unlink()
        session.new_segments += 1
        self.summary.segments += 1
        self.summary.seconds += duration
        log.info("%s: segment %d (%.2fs) chained", self.stream, segment.seq, duration)
        if self.on_segment is not None:
            self.on_segment(segment)
        return True

    def _freeze_anchor(self, session: _Session, start: float) -> None:
        """Fix a session's anchor at its first segment: a new session never starts before
        the entry before it ends (the wall-clock estimate may say a little earlier)."""
        assert session.anchor is not None
        head = self.chain.catalog.head(self._stream_id)
        if head is not None:
            earliest = head.ends_at - timedelta(seconds=start)
            session.anchor = max(session.anchor, earliest)
        session.anchor_frozen = True
        _write_anchor(session)

    def _check_ingested_time(self, starts_at: datetime, ends_at: datetime) -> None:
        head = self.chain.catalog.head(self._stream_id)
        slack = timedelta(seconds=TIMELINE_TOLERANCE_SECONDS)
        if head is not None and starts_at < head.ends_at - slack:
            raise InvalidInputError(
                f"stream {self.stream!r} holds recorded time up to {iso(head.ends_at)};"
                f" this file's media from {iso(starts_at)} would cover it twice"
            )
        if ends_at > utc_now() + slack:
            raise InvalidInputError(
                f"this file's media would end at {iso(ends_at)}, in the future: check --started-at"
            )

    def _media_sequence(
        self, session: _Session, start: float, end: float, final: bool
    ) -> tuple[int, int] | None:
        if session.follower is not None:
            fed, opened = session.follower.fed, session.follower.last_opened
        else:
            fed, opened = session.fed, session.last_opened
        span = media_sequence_of(fed, start, end, opened)
        if span is not None and final and opened is not None:
            # The session's last segment holds media up to the last source segment
            # ffmpeg opened (or part of it): the next session starts after that one.
            span = (span[0], max(span[1], opened))
        return span

    def _record_gap_before(self, starts_at: datetime) -> None:
        head = self.chain.catalog.head(self._stream_id)
        if head is None:
            return
        missed = (starts_at - head.ends_at).total_seconds()
        if missed > GAP_TOLERANCE_SECONDS:
            self.chain.append_gap(
                self._stream_id, self.stream, head.ends_at, starts_at, self._gap_reason
            )
            self.summary.gaps += 1

    def _finish_session(self, session: _Session) -> None:
        """Chain what ffmpeg listed, settle the unlisted partial segment, drop the dir."""
        if session.too_fast is None:
            listed = read_segment_list(session.directory / "segments.csv")
            names = {item.filename for item in listed} | session.chained
            partials = [p for p in sorted(session.directory.glob("seg*.ts")) if p.name not in names]
            # A segment may end a moment ahead of the wall clock; once that much time has
            # passed it is chained regardless (the lead check refuses worse).
            due = time.monotonic() + (session.allowance or 0.0) + 1.0
            while not self._chain_listed(session, final=not partials):
                if session.too_fast is not None:
                    break
                if time.monotonic() > due:
                    self._chain_listed(session, final=not partials, wait=False)
                    break
                time.sleep(POLL_SECONDS)
            offset = listed[-1].end if listed else 0.0
            for number, partial in enumerate(partials):
                if session.too_fast is None:
                    self._settle_partial(
                        session, partial, offset, final=number == len(partials) - 1
                    )
        shutil.rmtree(session.directory, ignore_errors=True)

    def _settle_partial(self, session: _Session, path: Path, offset: float, final: bool) -> None:
        if session.ingest:
            path.unlink()  # a run of the same ingest chains this segment whole
            return
        duration = probe_duration(self.settings.ffmpeg, path) if path.stat().st_size else 0.0
        if duration > 0 and session.anchor is not None:
            self._chain_file(
                session, path, offset, duration, recovered=True, final=final, wait=False
            )
            return
        if session.anchor is not None:
            start = session.anchor + timedelta(seconds=offset)
            end = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
            self._record_gap_before(start)
            head = self.chain.catalog.head(self._stream_id)
            start = max(start, head.ends_at) if head is not None else start
            self.chain.append_gap(
                self._stream_id,
                self.stream,
                start,
                max(start, end),
                "partial segment did not decode (recording interrupted)",
            )
            self.summary.gaps += 1
        path.unlink()

    def _recover_leftovers(self) -> None:
        leftovers = sorted(p for p in self.stream_dir.iterdir() if p.is_dir())
        for directory in leftovers:
            session = _Session(directory=directory, ingest=directory.name.startswith(INGEST_PREFIX))
            try:
                saved = json.loads((directory / "session.json").read_text())
                session.anchor = datetime.fromisoformat(saved["anchor"])
                # Files of earlier releases hold only an anchor, fixed when written.
                session.anchor_frozen = bool(saved.get("frozen", True))
            except (FileNotFoundError, KeyError, ValueError):
                pass  # ffmpeg never reported progress: nothing in it can be placed in time
            session.fed = read_fed_log(directory)
            session.last_opened = read_opened_log(directory)
            self._gap_reason = "recorder restarted after an interruption"
            self._finish_session(session)

    # -- ingest ---------------------------------------------------------------------------
    def _plan_ingest(self) -> None:
        """Check an ingest against what the stream holds: a file ingested whole is refused,
        an interrupted ingest of it is resumed after its last chained segment, and new
        media must start after the stream's recorded time and end before now."""
        assert self.started_at is not None
        catalog = self.chain.catalog
        path = Path(self.source)
        now = utc_now()
        if self.started_at > now:
            raise InvalidInputError(f"--started-at {iso(self.started_at)} is in the future")
        probe = probe_file(self.settings.ffmpeg, path)
        slack = timedelta(seconds=TIMELINE_TOLERANCE_SECONDS)
        if probe.duration is not None:
            ends = self.started_at + timedelta(seconds=probe.duration)
            if ends > now + slack:
                raise InvalidInputError(
                    f"{path.name} lasts {probe.duration:.1f}s: started at"
                    f" {iso(self.started_at)} it would end at {iso(ends)}, in the future"
                )
        sha256 = sha256_file(path)
        prefix = f"{INGEST_PREFIX}{sha256}-"
        earlier = [s for s in catalog.segments(self._stream_id) if s.capture.startswith(prefix)]
        if not earlier:
            head = catalog.head(self._stream_id)
            if head is not None and self.started_at < head.ends_at - slack:
                raise InvalidInputError(
                    f"stream {self.stream!r} holds recorded time up to {iso(head.ends_at)}:"
                    f" {path.name} started at {iso(self.started_at)} would cover it twice"
                    " (ingest it into another stream)"
                )
            self._ingest_session = f"{prefix}{self.segment_seconds:g}s"
            return
        first, last = earlier[0], earlier[-1]
        after = [
            e
            for e in catalog.entries(self._stream_id)
            if e.idx > last.entry_idx and e.kind not in UNTIMED_KINDS  # OCR's keyframes
        ]
        held = f"segments {first.seq}-{last.seq}, {iso(first.starts_at)} to {iso(_end(last))}"
        if after and after[0].kind == "end" and after[0].reason == FILE_INGESTED:
            raise ConflictError(
                f"{path.name} (sha256 {sha256[:16]}) is already ingested into stream"
                f" {self.stream!r} ({held})"
            )
        if any(e.kind != "end" for e in after):
            raise ConflictError(
                f"an interrupted ingest of {path.name} into stream {self.stream!r} ({held})"
                " cannot be resumed: the stream holds later recordings; ingest it into"
                " another stream"
            )
        if abs((first.starts_at - self.started_at).total_seconds()) > TIMELINE_TOLERANCE_SECONDS:
            raise InvalidInputError(
                f"the interrupted ingest of {path.name} into stream {self.stream!r} started"
                f" at {iso(first.starts_at)}: run it again with --started-at"
                f" {iso(first.starts_at)} to resume it"
            )
        session, _, _ = first.capture.partition("/")
        self._ingest_session = session
        self.segment_seconds = float(session.rpartition("-")[2].rstrip("s"))
        self._resume_captures = {s.capture.partition("/")[2] for s in earlier}
        self.summary.resumed = len(earlier)
        log.info("%s: resuming the ingest of %s after %s", self.stream, path.name, held)


def _end(segment: Segment) -> datetime:
    return segment.starts_at + timedelta(seconds=segment.duration)


def _timed_head(entries: Sequence[ManifestEntry]) -> ManifestEntry | None:
    """The last entry that claims time (a segment, gap or end)."""
    return next((e for e in reversed(entries) if e.kind not in UNTIMED_KINDS), None)


def _status_after(head: ManifestEntry | None, before: str) -> str:
    """How a stream stands once a recorder let go of it: ended (its source ended),
    stopped, or as before when it holds nothing."""
    if head is None:
        return before if before in ("idle", "stopped", "ended") else "idle"
    if head.kind == "end" and head.reason in SOURCE_END_REASONS:
        return "ended"
    return "stopped"


def _write_anchor(session: _Session) -> None:
    assert session.anchor is not None
    tmp = session.directory / "session.json.tmp"
    record = {"anchor": session.anchor.isoformat(), "frozen": session.anchor_frozen}
    tmp.write_text(json.dumps(record))
    tmp.replace(session.directory / "session.json")


class _StreamLock:
    """One recorder per stream across processes; the OS drops the lock if we die."""

    def __init__(self, path: Path, stream: str) -> None:
        self.path = path
        self.stream = stream
        self._fd = -1

    def __enter__(self) -> _StreamLock:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise ConflictError(f"stream {self.stream!r} is already being recorded") from None
        return self

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
