"""Word starts that Whisper put in the silence before a word move to where its sound
begins (transcriber/audio.py refine_onsets): on synthetic audio with known onsets."""

from __future__ import annotations

import numpy as np

from transcriber.audio import refine_onsets
from transcriber.protocol import SAMPLE_RATE, Word


def speech(*bursts: tuple[float, float], seconds: float = 4.0) -> np.ndarray:
    """Quiet noise with loud noise bursts (start, end) standing for spoken words."""
    rng = np.random.default_rng(7)
    samples = rng.normal(0, 0.002, int(seconds * SAMPLE_RATE)).astype(np.float32)
    for start, end in bursts:
        a, b = int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)
        samples[a:b] += rng.normal(0, 0.2, b - a).astype(np.float32)
    return samples


def word(start: float, end: float) -> Word:
    return Word("字", start, end, 0.9, 0)


def test_a_start_in_the_silence_moves_to_the_sound() -> None:
    audio = speech((0.5, 1.0), (1.9, 2.4))
    refined = refine_onsets([word(0.5, 1.0), word(1.3, 2.4)], audio)
    assert refined[0].start == 0.5  # already at its sound
    assert abs(refined[1].start - 1.9) <= 0.02 and refined[1].end == 2.4


def test_a_start_in_the_previous_words_tail_moves_past_the_pause() -> None:
    audio = speech((0.5, 1.45), (1.8, 2.4))
    (moved,) = refine_onsets([word(1.3, 2.4)], audio)
    assert abs(moved.start - 1.8) <= 0.02


def test_a_start_never_moves_earlier_nor_without_a_clear_onset() -> None:
    audio = speech((0.5, 2.5))
    assert refine_onsets([word(1.0, 1.4)], audio)[0].start == 1.0  # inside speech
    quiet = speech()  # nothing above the floor: nothing to go by
    assert refine_onsets([word(1.0, 1.4)], quiet)[0].start == 1.0
    late = refine_onsets([word(0.1, 3.9)], speech((3.0, 3.5)))[0]
    assert late.start == 0.1  # the sound is beyond the 0.8 s window: left alone
