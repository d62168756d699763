"""Record one live source into the stream's evidence chain.

Each ffmpeg run is a *session* with its own work directory. As ffmpeg closes a segment
the recorder hashes it, stores it, chains it, catalogs it and queues its transcription
(``EvidenceChain.append_segment``), then deletes the local copy. A drop ends the session;
the recorder reconnects with bounded exponential backoff and the time it missed becomes
a gap entry. Sessions left behind by a crash are finished at the next start: listed
segments are chained, a partial one is chained when it decodes and recorded as a gap
when it does not.

One recorder per stream: a file lock among the processes of one machine, and a lease in
the catalog among machines (renewed while recording; a crashed holder's lease runs out,
or is taken at once by a recorder on the same machine that sees the holder is gone).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from core.errors import ConflictError, InvalidInputError, StorageError
from core.settings import Settings
from core.timeutil import iso, utc_now
from recorder.ffmpeg import (
    FfmpegProcess,
    classify_failure,
    is_network_source,
    probe_duration,
    read_segment_list,
    segmenter_command,
)
from storage.blob_keys import check_stream_name
from storage.blobs.protocol import sha256_file
from storage.chain import ClosedSegment, EvidenceChain
from storage.models import Segment

log = logging.getLogger(__name__)

GAP_TOLERANCE_SECONDS = 1.0
POLL_SECONDS = 0.1  # how soon a closed segment is noticed (a small file read per stream)


@dataclass
class RecordingSummary:
    stream: str
    segments: int = 0
    gaps: int = 0
    seconds: float = 0.0
    sessions: int = 0
    ended_by: str = ""


@dataclass
class _Session:
    directory: Path
    anchor: datetime | None = None
    anchor_frozen: bool = False
    last_progress: float | None = None  # monotonic time of the last progress report
    media_seconds: float = 0.0
    chained: set[str] = field(default_factory=set)


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
        self._stream_id = 0
        self._last_signed = time.monotonic()
        self.holder = recorder_id()
        self._lease_renewed = 0.0

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
                catalog.set_status(self._stream_id, "recording")
                try:
                    self._recover_leftovers()
                    self._record()
                finally:
                    self.chain.sign_head(self._stream_id, self.stream)
                    catalog.set_status(self._stream_id, "stopped")
            finally:
                catalog.release_recording(self._stream_id, self.holder)
        return self.summary

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
        ever_connected = False
        while not self._stop.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self.summary.ended_by = "max duration"
                return
            session, process, reason = self._run_session(remaining)
            if session.last_progress is not None:
                ever_connected = True
                down_since = None
                backoff = self.settings.reconnect_initial_seconds
            if reason in ("stopped", "max duration"):
                self.summary.ended_by = self.summary.ended_by or reason
                return
            if reason == "ended" and not is_network_source(self.source):
                self.summary.ended_by = "source ended"
                return
            if not ever_connected:
                raise classify_failure(self.source, list(process.stderr_tail))
            # A live source dropped: wait, then reconnect; the missed time becomes a gap.
            self._gap_reason = f"source dropped: {process.error_line()}"
            down_since = down_since or time.monotonic()
            if time.monotonic() - down_since > self.settings.reconnect_give_up_seconds:
                self.summary.ended_by = "source down too long"
                return
            log.warning("%s: %s; reconnecting in %.1fs", self.stream, self._gap_reason, backoff)
            if self._pause(backoff):
                self.summary.ended_by = self.summary.ended_by or "stopped"
                return
            backoff = min(backoff * 2, self.settings.reconnect_max_seconds)

    def _run_session(self, remaining: float | None) -> tuple[_Session, FfmpegProcess, str]:
        directory = self.stream_dir / utc_now().strftime("%Y%m%dT%H%M%S%f")
        directory.mkdir(parents=True)
        session = _Session(directory=directory)
        if self.started_at is not None and self.summary.sessions == 0:
            session.anchor, session.anchor_frozen = self.started_at, True
            _write_anchor(session)
        command = segmenter_command(
            self.settings.ffmpeg,
            self.source,
            directory,
            self.segment_seconds,
            self.realtime,
            self.settings.connect_timeout_seconds,
        )
        process = FfmpegProcess(command, lambda t: self._progress(session, t))
        self.summary.sessions += 1
        opened = time.monotonic()
        ends_at = None if remaining is None else opened + remaining
        reason = "ended"
        while True:
            code = process.poll()
            self._chain_listed(session)
            now = time.monotonic()
            if code is not None:
                reason = "ended" if code == 0 else "failed"
                break
            if self._stop.is_set():
                process.stop()
                reason = "stopped"
                break
            if ends_at is not None and now >= ends_at:
                process.stop()
                reason = "max duration"
                break
            silent_since = session.last_progress or opened
            limit = (
                self.settings.stall_timeout_seconds
                if session.last_progress
                else self.settings.connect_timeout_seconds + self.settings.stall_timeout_seconds
            )
            if now - silent_since > limit:
                process.stderr_tail.append(f"no media for {limit:.0f}s")
                process.kill()
                reason = "stalled"
                break
            if now - self._last_signed > self.settings.sign_interval_seconds:
                self._sign_live_head()
                self._last_signed = now
            self._keep_lease()
            time.sleep(POLL_SECONDS)
        process.wait()
        self._finish_session(session)
        return session, process, reason

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
        if session.anchor_frozen:
            return
        # Media time t arrived no earlier than it was produced, so wall - t bounds the
        # wall time of media 0 from above; the smallest bound seen is the best anchor.
        candidate = wall - timedelta(seconds=media_seconds)
        if session.anchor is None or candidate < session.anchor - timedelta(milliseconds=50):
            session.anchor = candidate
            _write_anchor(session)

    # -- chaining -------------------------------------------------------------------------
    def _chain_listed(self, session: _Session) -> None:
        for listed in read_segment_list(session.directory / "segments.csv"):
            if listed.filename in session.chained:
                continue
            path = session.directory / listed.filename
            if path.exists():
                self._chain_file(session, path, listed.start, listed.end - listed.start)
            session.chained.add(listed.filename)

    def _chain_file(
        self, session: _Session, path: Path, start: float, duration: float, recovered: bool = False
    ) -> None:
        if session.anchor is None:
            session.anchor = utc_now() - timedelta(seconds=start + duration)
        if not session.anchor_frozen:
            session.anchor_frozen = True
            _write_anchor(session)
        starts_at = session.anchor + timedelta(seconds=start)
        self._record_gap_before(starts_at)
        closed = ClosedSegment(
            path=path,
            sha256=sha256_file(path),
            size=path.stat().st_size,
            starts_at=starts_at,
            duration=duration,
            capture=f"{session.directory.name}/{path.name}",
            recovered=recovered,
        )
        segment = self.chain.append_segment(self._stream_id, self.stream, closed)
        path.unlink()
        self.summary.segments += 1
        self.summary.seconds += duration
        log.info("%s: segment %d (%.2fs) chained", self.stream, segment.seq, duration)
        if self.on_segment is not None:
            self.on_segment(segment)

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
        self._chain_listed(session)
        listed = read_segment_list(session.directory / "segments.csv")
        offset = listed[-1].end if listed else 0.0
        for partial in sorted(session.directory.glob("seg*.ts")):
            if partial.name in session.chained:
                continue
            self._settle_partial(session, partial, offset)
        shutil.rmtree(session.directory, ignore_errors=True)

    def _settle_partial(self, session: _Session, path: Path, offset: float) -> None:
        duration = probe_duration(self.settings.ffmpeg, path) if path.stat().st_size else 0.0
        if duration > 0 and session.anchor is not None:
            self._chain_file(session, path, offset, duration, recovered=True)
            return
        if session.anchor is not None:
            start = session.anchor + timedelta(seconds=offset)
            end = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
            self._record_gap_before(start)
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
            session = _Session(directory=directory)
            try:
                saved = json.loads((directory / "session.json").read_text())
                session.anchor = datetime.fromisoformat(saved["anchor"])
                session.anchor_frozen = True
            except (FileNotFoundError, KeyError, ValueError):
                pass  # ffmpeg never reported progress: nothing in it can be placed in time
            self._gap_reason = "recorder restarted after an interruption"
            self._finish_session(session)


def _write_anchor(session: _Session) -> None:
    assert session.anchor is not None
    tmp = session.directory / "session.json.tmp"
    tmp.write_text(json.dumps({"anchor": session.anchor.isoformat()}))
    tmp.replace(session.directory / "session.json")


def recorder_id() -> str:
    """Who holds a lease: host, process and a nonce (a process records many streams)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_gone(holder: str) -> bool:
    """Whether a lease holder is a process of this machine that no longer runs."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class _StreamLock:
    """One recorder per stream across processes; the OS drops the lock if we die."""

    def __init__(self, path: Path, stream: str) -> None:
        self.path = path
        self.stream = stream
        self._fd = -1

    def __enter__(self) -> _StreamLock:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise ConflictError(f"stream {self.stream!r} is already being recorded") from None
        return self

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
