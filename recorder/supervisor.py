"""Record what the catalog asks for: the API marks a stream ``wanted`` (with its source)
and whichever process runs a supervisor (``livewitness serve`` or ``livewitness
recorder``) starts a recorder for it, stops it when it is no longer wanted, and starts it
again after a pause when it ends on its own (the source gave up) while still wanted.
Supervisors on several machines share the streams: each leaves alone a stream whose
recording lease another recorder holds (see recorder.recorder).
"""

from __future__ import annotations

import logging
import threading
import time

from core.errors import ConflictError, LiveWitnessError
from core.holders import holder_gone
from core.redact import redact_source
from core.timeutil import utc_now
from recorder.ffmpeg import is_network_source
from recorder.pool import RecorderPool
from storage.models import Stream
from storage.stores import Stores

log = logging.getLogger(__name__)


class RecordingSupervisor:
    def __init__(self, stores: Stores, restart_seconds: float = 30.0) -> None:
        self.stores = stores
        self.pool = RecorderPool(stores.settings, stores.chain)
        self.restart_seconds = restart_seconds
        self._ended_at: dict[str, float] = {}

    def reconcile(self) -> None:
        """One pass: start what is wanted and not running, stop what is running unwanted."""
        streams = {s.name: s for s in self.stores.catalog.list_streams()}
        running = set(self.pool.recording())
        for name in running:
            stream = streams.get(name)
            if stream is None or not stream.wanted:
                log.info("stopping %s: no longer wanted", name)
                self.pool.request_stop(name)
        for name, stream in streams.items():
            if not stream.wanted or name in running or not stream.source:
                continue
            if held_elsewhere(stream):
                continue
            ended = self.pool.outcome(name)
            if self.pool.refused(name):  # lost the race to another recorder: no pause
                self.pool.forget(name)
                ended = None
            if ended is not None:
                self._ended_at.setdefault(name, time.monotonic())
                if time.monotonic() - self._ended_at[name] < self.restart_seconds:
                    continue
                self.pool.forget(name)
            self._ended_at.pop(name, None)
            self._start(stream.id, name, stream.source)
        for name in list(self.pool.finished()):
            error = self.pool.outcome(name)
            if error and not self.pool.refused(name):
                stream = streams.get(name)
                if stream is not None and stream.last_error != error:
                    self.stores.catalog.note_recording_error(stream.id, error)

    def _start(self, stream_id: int, name: str, source: str) -> None:
        try:
            # A file plays at its own pace (a demo or a test stands in for a live room).
            self.pool.start(name, source, realtime=not is_network_source(source))
            self.stores.catalog.note_recording_error(stream_id, None)
            log.info("recording %s from %s", name, redact_source(source))
        except ConflictError:
            pass  # another process (or a CLI `record`) holds it
        except LiveWitnessError as exc:
            self.stores.catalog.note_recording_error(stream_id, str(exc))

    def follow(self, stop: threading.Event, poll_seconds: float = 1.0) -> None:
        try:
            while not stop.is_set():
                self.reconcile()
                stop.wait(poll_seconds)
        finally:
            self.pool.stop_all()


def held_elsewhere(stream: Stream) -> bool:
    """Whether another recorder holds the stream's lease and may still be recording."""
    until = stream.recorder_lease_until
    if not stream.recorder or until is None or until < utc_now():
        return False
    return not holder_gone(stream.recorder)
