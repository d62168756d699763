"""Decode stored segments to 16 kHz mono float32 with ffmpeg; find where words begin."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import SourceError
from transcriber.protocol import SAMPLE_RATE, Audio, Word


def decode(ffmpeg: str, path: Path, start: float = 0.0, duration: float | None = None) -> Audio:
    """Audio of a media file, optionally from ``start`` seconds for ``duration`` seconds."""
    command = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error"]
    if start > 0:
        command += ["-ss", f"{start:.3f}"]
    command += ["-i", str(path)]
    if duration is not None:
        command += ["-t", f"{duration:.3f}"]
    command += ["-map", "0:a:0?", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-"]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        raise SourceError(f"cannot decode audio of {path.name}: {detail[-1] if detail else ''}")
    samples = np.frombuffer(result.stdout, dtype=np.int16)
    return (samples.astype(np.float32) / 32768.0).astype(np.float32)


FRAME_SECONDS = 0.01
ONSET_SEARCH_SECONDS = 0.8  # how far into a word its sound may start (Whisper's lead)
ONSET_RISE = 0.08  # share of the way from the noise floor to loud speech that is speech
PAUSE_FRAMES = 5  # 50 ms below it: a pause between words


def refine_onsets(words: Sequence[Word], samples: Audio) -> list[Word]:
    """Words whose start Whisper put in the silence before them, moved to where their
    sound begins. After a pause Whisper often starts the next word early (by up to
    ~0.6 s), and a hit's link and clip start at its first word. The energy of 10 ms
    frames is compared with a threshold between the audio's noise floor and its loud
    speech; a start only ever moves later, within the word and its first 0.8 s, and
    stays where it is when no frame of that window is above the threshold (music or
    noise under the speech)."""
    frame = int(SAMPLE_RATE * FRAME_SECONDS)
    count = len(samples) // frame
    if count < 10 or not words:
        return list(words)
    energy = np.sqrt(np.mean(np.square(samples[: count * frame].reshape(count, frame)), axis=1))
    floor, loud = np.percentile(energy, 10), np.percentile(energy, 95)
    if loud <= floor * 2:  # no clear speech above the floor: nothing to go by
        return list(words)
    threshold = floor + ONSET_RISE * (loud - floor)
    refined = []
    for word in words:
        first = int(word.start / FRAME_SECONDS)
        last = min(int(min(word.end, word.start + ONSET_SEARCH_SECONDS) / FRAME_SECONDS), count)
        rise = _onset(energy[first:last] > threshold)
        if rise:
            start = min((first + rise) * FRAME_SECONDS, word.end - FRAME_SECONDS)
            word = replace(word, start=round(max(start, word.start), 3))
        refined.append(word)
    return refined


def _onset(loud: np.ndarray[Any, np.dtype[np.bool_]]) -> int:
    """The frame where a word's sound begins in its window: the first loud frame, or,
    when the window opens on the previous word's last sound, the first loud frame after
    a pause of ``PAUSE_FRAMES``; 0 (unchanged) when there is neither."""
    frames = np.nonzero(loud)[0]
    if not len(frames):
        return 0
    if frames[0] > 0:
        return int(frames[0])
    quiet = np.convolve(~loud, np.ones(PAUSE_FRAMES, dtype=int), mode="valid") == PAUSE_FRAMES
    pauses = np.nonzero(quiet)[0]
    if not len(pauses):
        return 0
    after = frames[frames > pauses[0]]
    return int(after[0]) if len(after) else 0
