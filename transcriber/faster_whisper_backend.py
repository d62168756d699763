"""Transcriber on faster-whisper (CTranslate2): CPU int8 by default, GPU by settings."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.settings import Settings
from transcriber.model_store import base_model_dir
from transcriber.protocol import SAMPLE_RATE, Audio, DecodeOptions, Word

log = logging.getLogger(__name__)
FULL_WINDOW_FRAMES = 3000  # Whisper's 30 s of 10 ms mel frames
_window = threading.local()  # frames the encoder hears in this thread's current call


def _install_short_windows() -> bool:
    """Let a call give the encoder fewer than 30 s of frames (``DecodeOptions.window_pad``).

    faster-whisper pads every window to 30 s before the encoder, which is most of the cost
    of a short piece (0.55 of 0.65 s for 2 s of talk on 2 cores; 0.08 s for 10 s of frames,
    which CTranslate2 accepts): whisper.cpp calls this the audio context. Its padding
    function is wrapped to read this thread's window (30 s unless a call asks), so other
    calls are untouched. Returns False (and short windows are not used) if this version
    of faster-whisper pads elsewhere."""
    import faster_whisper.transcribe as module

    original = getattr(module, "pad_or_trim", None)
    if original is None:
        return False
    if getattr(original, "livewitness_window", False):
        return True

    def pad_or_trim(array: Any, length: int = FULL_WINDOW_FRAMES, *, axis: int = -1) -> Any:
        frames = getattr(_window, "frames", None)
        return original(
            array, frames if frames and length == FULL_WINDOW_FRAMES else length, axis=axis
        )

    pad_or_trim.livewitness_window = True  # type: ignore[attr-defined]
    module.pad_or_trim = pad_or_trim
    return True


class FasterWhisperTranscriber:
    def __init__(self, settings: Settings) -> None:
        from faster_whisper import WhisperModel

        model = settings.whisper_model
        if model == "base":
            location = str(base_model_dir(settings.models_dir))
        elif Path(model).is_dir():
            location = model
        else:
            location = model  # a model name: needs a reachable model hub or its cache
        threads = settings.whisper_cpu_threads or max(
            1, (os.cpu_count() or 1) // settings.transcribe_workers
        )
        try:
            self.model = WhisperModel(
                location,
                device=settings.whisper_device,
                compute_type=settings.whisper_compute_type,
                cpu_threads=threads,
                num_workers=settings.transcribe_workers,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ConfigError(f"cannot load Whisper model {model!r}: {exc}") from exc
        self.name = f"faster-whisper:{model}:{settings.whisper_compute_type}"
        self.beam_size = settings.whisper_beam_size
        self.vad = settings.whisper_vad
        self._lock = threading.Lock()
        self._short_windows = _install_short_windows()
        if not self._short_windows:
            log.warning("this faster-whisper pads elsewhere: every call hears a 30 s window")

    def transcribe(self, audio: Audio, options: DecodeOptions) -> list[Word]:
        kwargs: dict[str, Any] = {
            "language": options.language,
            "beam_size": options.beam_size or self.beam_size,
            "word_timestamps": True,
            # Each segment is decoded on its own (with audio context), so earlier text
            # cannot feed repetition loops.
            "condition_on_previous_text": False,
            "vad_filter": self.vad,
            # Fewer fallback rounds than the default six: each costs a full re-decode.
            "temperature": (0.0, 0.4, 0.8),
            "initial_prompt": options.prompt,
            "hotwords": options.hotwords,
        }
        if self.vad:
            # Keep short pauses inside speech: the default 2 s window has cut whole
            # sentences on this model.
            kwargs["vad_parameters"] = {"min_silence_duration_ms": 500, "speech_pad_ms": 300}
        if options.window_pad is not None and self._short_windows:
            seconds = len(audio) / SAMPLE_RATE + options.window_pad
            _window.frames = min(FULL_WINDOW_FRAMES, max(100, round(seconds * 100)))
        try:
            segments, _info = self.model.transcribe(audio, **kwargs)
            words: list[Word] = []
            for index, segment in enumerate(segments):  # decoded as this iterates
                for word in segment.words or []:
                    words.append(
                        Word(
                            text=word.word,
                            start=float(word.start),
                            end=float(word.end),
                            probability=float(word.probability),
                            utterance=index,
                        )
                    )
            return words
        finally:
            _window.frames = None
