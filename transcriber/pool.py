"""N transcription workers in one process, following the queue until stopped."""

from __future__ import annotations

import threading

from storage.stores import Stores
from transcriber.factory import open_transcriber
from transcriber.worker import TranscriptionWorker


class TranscriberPool:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.transcriber = open_transcriber(stores)  # one model, shared by the workers
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for number in range(self.stores.settings.transcribe_workers):
            worker = TranscriptionWorker(self.stores, self.transcriber)
            thread = threading.Thread(
                target=worker.run, args=(self._stop,), name=f"transcriber-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def run(self) -> None:
        self.start()
        self._stop.wait()
        self.join()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)
