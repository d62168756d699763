"""The speech chunk's audio format, shared by the recorder (writes) and the transcriber
(reads): 16 kHz mono 16-bit PCM in a WAV container."""

from __future__ import annotations

import io
import wave

import numpy as np

SAMPLE_RATE = 16_000
SAMPLE_BYTES = 2  # s16le mono


def wav_bytes(pcm: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(SAMPLE_BYTES)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(pcm)
    return out.getvalue()


def wav_samples(data: bytes) -> np.ndarray:
    """A chunk's WAV as float32 samples in [-1, 1)."""
    with wave.open(io.BytesIO(data), "rb") as reader:
        layout = (reader.getnchannels(), reader.getsampwidth(), reader.getframerate())
        if layout != (1, SAMPLE_BYTES, SAMPLE_RATE):
            raise ValueError("a speech chunk is 16 kHz mono 16-bit PCM")
        pcm = reader.readframes(reader.getnframes())
    return (np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0).astype(np.float32)
