"""Many recorders in one process: one thread per stream (the API starts them on request)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from core.errors import ConflictError, LiveWitnessError, NotFoundError
from core.settings import Settings
from recorder.recorder import RecordingSummary, StreamRecorder
from storage.chain import EvidenceChain


@dataclass
class _Running:
    recorder: StreamRecorder
    thread: threading.Thread
    summary: RecordingSummary | None = None
    error: LiveWitnessError | None = None


class RecorderPool:
    def __init__(self, settings: Settings, chain: EvidenceChain) -> None:
        self.settings = settings
        self.chain = chain
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()

    def start(self, stream: str, source: str, **options: Any) -> None:
        recorder = StreamRecorder(self.settings, self.chain, stream, source, **options)
        with self._lock:
            current = self._running.get(stream)
            if current is not None and current.thread.is_alive():
                raise ConflictError(f"stream {stream!r} is already being recorded")
            thread = threading.Thread(target=self._run, args=(stream,), name=f"record-{stream}")
            self._running[stream] = _Running(recorder=recorder, thread=thread)
        thread.start()

    def _run(self, stream: str) -> None:
        running = self._running[stream]
        try:
            running.summary = running.recorder.run()
        except LiveWitnessError as exc:
            running.error = exc

    def recording(self) -> list[str]:
        with self._lock:
            return sorted(name for name, r in self._running.items() if r.thread.is_alive())

    def request_stop(self, stream: str) -> None:
        """Ask a recorder to stop and return at once (it closes its segment first)."""
        running = self._running.get(stream)
        if running is not None:
            running.recorder.stop()

    def finished(self) -> list[str]:
        with self._lock:
            return sorted(n for n, r in self._running.items() if not r.thread.is_alive())

    def outcome(self, stream: str) -> str | None:
        """None while it runs (or never ran); once it ended: its error, or "" if none."""
        with self._lock:
            running = self._running.get(stream)
            if running is None or running.thread.is_alive():
                return None
            return str(running.error) if running.error else ""

    def refused(self, stream: str) -> bool:
        """Whether its recorder ended without recording: another recorder holds the stream."""
        with self._lock:
            running = self._running.get(stream)
            return (
                running is not None
                and not running.thread.is_alive()
                and isinstance(running.error, ConflictError)
            )

    def forget(self, stream: str) -> None:
        with self._lock:
            running = self._running.get(stream)
            if running is not None and not running.thread.is_alive():
                del self._running[stream]

    def stop(self, stream: str, timeout: float = 30.0) -> RecordingSummary | None:
        running = self._running.get(stream)
        if running is None:
            raise NotFoundError(f"stream {stream!r} is not being recorded")
        running.recorder.stop()
        return self.wait(stream, timeout)

    def wait(self, stream: str, timeout: float | None = None) -> RecordingSummary | None:
        running = self._running[stream]
        running.thread.join(timeout)
        if running.error is not None:
            raise running.error
        return running.summary

    def stop_all(self, timeout: float = 30.0) -> None:
        for name in list(self._running):
            self._running[name].recorder.stop()
        for running in list(self._running.values()):
            running.thread.join(timeout)
