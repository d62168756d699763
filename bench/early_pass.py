"""The fast pass (recorder/speech.py "Early pieces"): what a clause costs to decode, and how
well it is heard, by decoding window and beam.

    .venv/bin/python bench/early_pass.py

The committed Mandarin fixtures are cut by the recorder's SpeechChunker with the default
settings (chunks and early pieces, as a live recorder cuts them); each early piece is
decoded through FasterWhisperTranscriber (Whisper base int8, 2 threads, the pipeline's
options) with Whisper's 30 s window and with a window of the piece's length plus 1, 3 or 5
s (DecodeOptions.window_pad), greedy and with beam 5; each chunk likewise, for
comparison. Reported per variant: calls, median seconds per call, and the character error
rate of what was heard against what was said in the same span (the fixture's characters
whose onset lies in the piece or chunk).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from core.settings import Settings
from core.text import to_simplified
from recorder.speech import ChunkAudio, SpeechChunker
from tests.support.speech import char_error_rate, clip, clip_path
from transcriber.audio import decode
from transcriber.faster_whisper_backend import FasterWhisperTranscriber
from transcriber.protocol import DecodeOptions

CLIPS = ("sales_1", "sales_2", "boundary")


def cut(settings: Settings, name: str) -> list[ChunkAudio]:
    samples = decode(settings.ffmpeg, clip_path(name))
    pcm = (samples * 32767).astype(np.int16).tobytes()
    chunker = SpeechChunker.of(settings, live=True)
    out: list[ChunkAudio] = []
    for at in range(0, len(pcm), 3200):  # 0.1 s reads, as from the recorder's pipe
        out += chunker.feed(pcm[at : at + 3200])
    return out + chunker.flush()


def said(name: str, start: float, end: float) -> str:
    """The fixture's characters whose onset lies in [start, end)."""
    return "".join(
        char["char"]
        for sentence in clip(name)["sentences"]
        for char in sentence["chars"]
        if start <= char["onset"] < end
    )


def run(
    transcriber: FasterWhisperTranscriber,
    pieces: dict[str, list[ChunkAudio]],
    beam: int,
    pad: float | None,
) -> dict[str, Any]:
    times: list[float] = []
    heard, truth = [], []
    for name, items in pieces.items():
        for item in items:
            audio = np.frombuffer(item.pcm, dtype=np.int16).astype(np.float32) / 32768
            options = DecodeOptions(language="zh", beam_size=beam, window_pad=pad)
            began = time.perf_counter()
            words = transcriber.transcribe(audio, options)
            times.append(time.perf_counter() - began)
            heard.append(to_simplified("".join(w.text for w in words)))
            truth.append(said(name, item.start, item.start + item.duration))
    return {
        "calls": len(times),
        "seconds_per_call": statistics.median(times),
        "cer": char_error_rate("".join(heard), "".join(truth)),
    }


def main() -> None:
    settings = Settings(whisper_cpu_threads=2)  # the model is assembled in its home once
    transcriber = FasterWhisperTranscriber(settings)
    cuts = {name: cut(settings, name) for name in CLIPS}
    early = {n: [c for c in items if c.provisional] for n, items in cuts.items()}
    chunks = {n: [c for c in items if not c.provisional] for n, items in cuts.items()}
    transcriber.transcribe(np.zeros(16000, dtype=np.float32), DecodeOptions(language="zh"))
    print("| what | beam | window | calls | seconds per call (median) | character error rate |")
    print("|---|---|---|---|---|---|")
    for label, items in (("early pieces", early), ("chunks", chunks)):
        for beam in (1, 5):
            for pad in (None, 1.0, 3.0, 5.0):
                r = run(transcriber, items, beam, pad)
                window = "30 s (Whisper's)" if pad is None else f"length + {pad:g} s"
                print(
                    f"| {label} | {beam} | {window} | {r['calls']} |"
                    f" {r['seconds_per_call']:.2f} | {r['cer']:.3f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
