"""The transcriber factory: the configured Whisper backend."""

from __future__ import annotations

from storage.stores import Stores
from transcriber.protocol import Transcriber


def open_transcriber(stores: Stores) -> Transcriber:
    settings = stores.settings
    if settings.transcriber_backend == "openai-whisper":
        from transcriber.openai_whisper_backend import OpenAIWhisperTranscriber

        return OpenAIWhisperTranscriber(settings)
    from transcriber.faster_whisper_backend import FasterWhisperTranscriber

    return FasterWhisperTranscriber(settings)
