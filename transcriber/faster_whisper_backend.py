"""Transcriber on faster-whisper (CTranslate2): CPU int8 by default, GPU by settings."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.settings import Settings
from transcriber.model_store import base_model_dir
from transcriber.protocol import Audio, DecodeOptions, Word


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
        segments, _info = self.model.transcribe(audio, **kwargs)
        words: list[Word] = []
        for index, segment in enumerate(segments):
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
