"""The Transcriber Protocol: audio in, timed words out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
Audio = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Word:
    """A recognised word; times are seconds from the start of the audio given."""

    text: str
    start: float
    end: float
    probability: float
    utterance: int  # index of the sentence-like unit the decoder put it in


@dataclass(frozen=True)
class DecodeOptions:
    language: str | None = None
    prompt: str | None = None  # vocabulary and context that steer the decoder
    hotwords: str | None = None
    beam_size: int | None = None  # None: the transcriber's own (the fast pass asks for 1)
    # The decoder's window: the audio's length plus this many seconds, instead of Whisper's
    # 30 s (None). Several times faster on short audio, a little less accurate: the fast
    # pass uses it; a backend that cannot shorten its window ignores it.
    window_pad: float | None = None


class Transcriber(Protocol):
    name: str

    def transcribe(self, audio: Audio, options: DecodeOptions) -> list[Word]:
        """Words of 16 kHz mono float32 audio, in order; none for silence or music."""
        ...
