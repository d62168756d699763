"""RapidOCR (onnxruntime) with the PP-OCRv4 Chinese detection and recognition models its
wheel ships: nothing is downloaded at run time."""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from core.errors import ConfigError, SourceError
from core.screen import ReadLine


class RapidOcrReader:
    name = "rapidocr-onnxruntime/PP-OCRv4-ch"

    def __init__(self, min_confidence: float) -> None:
        if importlib.util.find_spec("rapidocr_onnxruntime") is None:
            raise ConfigError(
                "on-screen text needs rapidocr-onnxruntime, which is not installed (it has no"
                " wheel for Python 3.13 yet): install it, or set LIVEWITNESS_OCR_ENABLED=false"
            )
        self.min_confidence = min_confidence
        self._engine: Any = None
        self._loading = threading.Lock()

    def _load(self) -> Any:
        with self._loading:
            if self._engine is None:
                from rapidocr_onnxruntime import RapidOCR  # heavy: loaded on first use

                # Overlays are upright: the angle classifier would only cost time.
                self._engine = RapidOCR(use_cls=False)
            return self._engine

    def read(self, jpeg: bytes) -> list[ReadLine]:
        engine = self._load()
        try:
            found, _elapsed = engine(jpeg, use_cls=False)
        except Exception as exc:  # the engine's own errors on an image it cannot decode
            raise SourceError(f"OCR could not read a frame: {exc}") from None
        lines = []
        for box, text, score in found or []:
            confidence = float(score)
            if confidence < self.min_confidence or not str(text).strip():
                continue
            corners = tuple((round(float(x), 1), round(float(y), 1)) for x, y in box)
            lines.append(ReadLine(text=str(text).strip(), box=corners, confidence=confidence))
        return lines
