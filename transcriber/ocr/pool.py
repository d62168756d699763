"""N OCR workers in one process, following the queue until stopped."""

from __future__ import annotations

import threading

from storage.stores import Stores
from transcriber.ocr.protocol import ScreenReader
from transcriber.ocr.rapid import RapidOcrReader
from transcriber.ocr.worker import OcrWorker


def open_reader(stores: Stores) -> ScreenReader:
    return RapidOcrReader(stores.settings.ocr_min_confidence)


class OcrPool:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.reader = open_reader(stores)  # one engine, shared by the workers
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for number in range(self.stores.settings.ocr_workers):
            worker = OcrWorker(self.stores, self.reader)
            thread = threading.Thread(
                target=worker.run, args=(self._stop,), name=f"ocr-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)
