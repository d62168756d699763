"""The OCR engine as one small Protocol: a JPEG in, the text lines read in it out."""

from __future__ import annotations

from typing import Protocol

from core.screen import ReadLine


class ScreenReader(Protocol):
    name: str  # engine and model, as records and docs name it

    def read(self, jpeg: bytes) -> list[ReadLine]:
        """The lines of text in a frame, in reading order; raises SourceError when the
        image cannot be decoded."""
        ...
