"""Transcriber on openai-whisper (PyTorch), the alternative backend (extra ``openai-whisper``).

Set ``LIVEWITNESS_TRANSCRIBER_BACKEND=openai-whisper`` and ``LIVEWITNESS_OPENAI_WHISPER_MODEL``
to a checkpoint file (``base.pt``) or a model name the machine has cached.
"""

from __future__ import annotations

from typing import Any

from core.errors import ConfigError
from core.settings import Settings
from transcriber.protocol import Audio, DecodeOptions, Word


class OpenAIWhisperTranscriber:
    def __init__(self, settings: Settings) -> None:
        try:
            import whisper
        except ImportError:
            raise ConfigError(
                "the openai-whisper backend needs: pip install 'livewitness[openai-whisper]'"
            ) from None
        if not settings.openai_whisper_model:
            raise ConfigError("set LIVEWITNESS_OPENAI_WHISPER_MODEL to a checkpoint or name")
        device = "cuda" if settings.whisper_device == "cuda" else "cpu"
        try:
            self.model: Any = whisper.load_model(settings.openai_whisper_model, device=device)
        except (RuntimeError, OSError) as exc:
            raise ConfigError(f"cannot load {settings.openai_whisper_model}: {exc}") from exc
        self.name = f"openai-whisper:{settings.openai_whisper_model}"
        self.beam_size = settings.whisper_beam_size
        self.fp16 = device == "cuda"

    def transcribe(self, audio: Audio, options: DecodeOptions) -> list[Word]:
        result = self.model.transcribe(
            audio,
            language=options.language,
            initial_prompt=options.prompt,
            word_timestamps=True,
            condition_on_previous_text=False,
            beam_size=options.beam_size or self.beam_size,
            fp16=self.fp16,
        )
        words: list[Word] = []
        for index, segment in enumerate(result.get("segments", [])):
            for word in segment.get("words", []):
                words.append(
                    Word(
                        text=str(word["word"]),
                        start=float(word["start"]),
                        end=float(word["end"]),
                        probability=float(word.get("probability", 0.0)),
                        utterance=index,
                    )
                )
        return words
