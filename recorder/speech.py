"""Speech as it arrives: the recorder's 16 kHz PCM tap cut into chunks at pauses.

The recorder's ffmpeg writes, beside the evidence segments, the first audio track as
16 kHz mono s16le to a pipe (recorder/ffmpeg.py). :class:`SpeechChunker` runs a
voice-activity detector (webrtcvad, 30 ms frames) over it and ends a chunk

- at a pause of ``pause_seconds`` once the chunk holds ``min_seconds``: Whisper's encoder
  costs nearly as much for 3 s as for 13 s, so short chunks cost capacity;
- at a pause of ``long_pause_seconds`` whatever its length: the phrase is over;
- at ``max_seconds`` of talk without a pause, at its quietest 30 ms in the last two
  seconds (a breath), so that a word is rarely cut.

A chunk keeps ``PAD_SECONDS`` of audio around its speech (Whisper hears a word's onset
and release) and is dropped when it holds less than ``MIN_SPEECH_SECONDS`` of speech (a
click, a cough). Chunks never overlap, so each word is heard once: the segment-boundary
handover that whole-segment transcription needs does not arise.

Early pieces (the fast pass, ``early_pause_seconds`` given). A chunk waits for a pause of
``pause_seconds`` that ends a sentence, so a phrase early in a long sentence waits for the
rest of it. Meanwhile each clause (talk since the last piece, at least
``early_min_seconds``, followed by a pause of ``early_pause_seconds`` or more) is handed on
as a *provisional* piece when the talk resumes: transcribed at once, its words are
searchable and alerted about a second after they are said. Not before the talk resumes: a
pause that goes on ends the chunk itself, which would make the piece a second decoding of
the same words a moment later. The chunk, handed on when it closes, covers the same audio
and its transcript replaces the pieces' words (core.transcript): decoded with the whole
sentence in view, it is the record. Pieces of one chunk never overlap each other.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import webrtcvad

from core.pcm import SAMPLE_BYTES, SAMPLE_RATE, wav_bytes
from core.settings import Settings

log = logging.getLogger(__name__)

FRAME_SECONDS = 0.03
FRAME_BYTES = int(SAMPLE_RATE * FRAME_SECONDS) * SAMPLE_BYTES
PAD_SECONDS = 0.2
MIN_SPEECH_SECONDS = 0.25
QUIET_SEARCH_SECONDS = 2.0  # where a chunk too long is cut: the quietest frame in these


@dataclass(frozen=True)
class ChunkAudio:
    """Audio of one chunk: ``start`` is its first sample's media time (seconds)."""

    start: float
    pcm: bytes  # 16 kHz mono s16le
    provisional: bool = False  # an early piece of a chunk still open (module doc)
    chunk_start: float | None = None  # an early piece's: where its chunk starts

    @property
    def filed_at(self) -> float:
        """Where its chunk starts: a piece is filed with its chunk (core.transcript)."""
        return self.start if self.chunk_start is None else self.chunk_start

    @property
    def duration(self) -> float:
        return len(self.pcm) / (SAMPLE_RATE * SAMPLE_BYTES)

    def wav(self) -> bytes:
        return wav_bytes(self.pcm)


class SpeechChunker:
    """Feed PCM as it comes; get the chunks it completes (see the module doc)."""

    def __init__(
        self,
        *,
        pause_seconds: float,
        long_pause_seconds: float,
        min_seconds: float,
        max_seconds: float,
        aggressiveness: int = 2,
        early_pause_seconds: float | None = None,
        early_min_seconds: float = 0.0,
    ) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        # Early pieces: off when None; a clause ends at a pause shorter than a chunk's.
        self._early_pause = None if early_pause_seconds is None else _frames(early_pause_seconds)
        self._early_min = _frames(early_min_seconds) if early_min_seconds > 0 else 0
        self._mark = 0  # where the open chunk's next early piece begins (a frame in it)
        self._pause = _frames(pause_seconds)
        self._long_pause = max(_frames(long_pause_seconds), self._pause)
        self._min = _frames(min_seconds)
        self._max = max(_frames(max_seconds), _frames(QUIET_SEARCH_SECONDS) + 1)
        self._pad = _frames(PAD_SECONDS)
        self._pending = b""  # less than a frame
        self._frame = 0  # frames seen so far: the media clock
        self._before: deque[bytes] = deque(maxlen=self._pad)  # pre-roll outside a chunk
        self._chunk: list[bytes] = []  # frames of the open chunk
        self._chunk_start = 0  # its first frame
        self._speech: list[bool] = []  # per frame of the open chunk
        self._silence = 0  # trailing non-speech frames of the open chunk

    @classmethod
    def of(cls, settings: Settings, live: bool) -> SpeechChunker:
        """The chunker the settings describe; early pieces only for a live source (and
        only when ``early_transcripts`` is on)."""
        early = settings.early_transcripts and live
        return cls(
            pause_seconds=settings.chunk_pause_seconds,
            long_pause_seconds=settings.chunk_long_pause_seconds,
            min_seconds=settings.chunk_min_seconds,
            max_seconds=settings.chunk_max_seconds,
            aggressiveness=settings.vad_aggressiveness,
            early_pause_seconds=settings.early_pause_seconds if early else None,
            early_min_seconds=settings.early_min_seconds,
        )

    def feed(self, pcm: bytes) -> list[ChunkAudio]:
        data = self._pending + pcm
        usable = len(data) - len(data) % FRAME_BYTES
        self._pending = data[usable:]
        done: list[ChunkAudio] = []
        for at in range(0, usable, FRAME_BYTES):
            done += self._frame_in(data[at : at + FRAME_BYTES])
        return done

    def flush(self) -> list[ChunkAudio]:
        """The open chunk, at the end of the audio."""
        chunk = self._close(len(self._chunk))
        return [chunk] if chunk is not None else []

    def _frame_in(self, frame: bytes) -> list[ChunkAudio]:
        speech = self._vad.is_speech(frame, SAMPLE_RATE)
        self._frame += 1
        if not self._chunk:
            if not speech:
                self._before.append(frame)
                return []
            self._chunk = [*self._before, frame]
            self._speech = [False] * len(self._before) + [True]
            self._chunk_start = self._frame - len(self._chunk)
            self._before.clear()
            self._silence = 0
            return []
        paused = self._silence
        self._chunk.append(frame)
        self._speech.append(speech)
        self._silence = 0 if speech else self._silence + 1
        pieces = []
        if speech and self._early_pause is not None and paused >= self._early_pause:
            # The talk resumes after a clause's pause: that clause is a piece.
            piece = self._early_piece(len(self._chunk) - 1 - paused)
            pieces = [piece] if piece is not None else []
        talk = len(self._chunk) - self._silence
        if self._silence >= self._long_pause or (
            self._silence >= self._pause and talk >= self._min
        ):
            chunk = self._close(len(self._chunk) - self._silence + self._pad)
            return [chunk] if chunk is not None else []
        if len(self._chunk) >= self._max:
            chunk = self._close(self._quietest_cut())
            return [chunk] if chunk is not None else []
        return pieces

    def _early_piece(self, talk_end: int) -> ChunkAudio | None:
        """The clause that ended at frame ``talk_end`` of the open chunk (a pause followed),
        as a provisional piece (module doc)."""
        if talk_end - self._mark < max(self._early_min, 1):
            return None
        end = min(len(self._chunk) - 1, talk_end + self._pad)
        speech = self._speech[self._mark : talk_end]
        if sum(speech) < _frames(MIN_SPEECH_SECONDS):
            return None
        start = self._chunk_start + self._mark
        pcm = b"".join(self._chunk[self._mark : end])
        self._mark = end
        return ChunkAudio(
            start=start * FRAME_SECONDS,
            pcm=pcm,
            provisional=True,
            chunk_start=self._chunk_start * FRAME_SECONDS,
        )

    def _quietest_cut(self) -> int:
        """Where to cut a chunk that reached its maximum: after its quietest frame among
        the last QUIET_SEARCH_SECONDS (a breath between words, as a rule)."""
        search = _frames(QUIET_SEARCH_SECONDS)
        first = len(self._chunk) - search
        energies = [
            float(np.mean(np.frombuffer(f, dtype=np.int16).astype(np.float32) ** 2))
            for f in self._chunk[first:]
        ]
        return first + int(np.argmin(energies)) + 1

    def _close(self, keep: int) -> ChunkAudio | None:
        """End the open chunk after its first ``keep`` frames; the rest opens the next
        one (it was talk past a forced cut) or becomes pre-roll (a pause)."""
        if not self._chunk:
            return None
        keep = min(keep, len(self._chunk))
        frames, rest = self._chunk[:keep], self._chunk[keep:]
        speech, rest_speech = self._speech[:keep], self._speech[keep:]
        start = self._chunk_start
        self._chunk, self._speech, self._silence, self._mark = [], [], 0, 0
        if any(rest_speech):
            self._chunk, self._speech = rest, rest_speech
            self._chunk_start = start + keep
            while self._silence < len(rest_speech) and not rest_speech[-1 - self._silence]:
                self._silence += 1
        else:
            self._before.extend(rest)
        if sum(speech) < _frames(MIN_SPEECH_SECONDS):
            return None
        return ChunkAudio(start=start * FRAME_SECONDS, pcm=b"".join(frames))


def _frames(seconds: float) -> int:
    return max(1, round(seconds / FRAME_SECONDS))


class AudioTap:
    """Reads ffmpeg's PCM pipe on a thread, chunks it, and hands each chunk on; at the
    pipe's end (ffmpeg exited) the open chunk is handed on too. A chunk the handler
    fails on is logged and dropped: the evidence segments hold the audio regardless."""

    def __init__(
        self, read_fd: int, chunker: SpeechChunker, on_chunk: Callable[[ChunkAudio], None]
    ) -> None:
        self._fd = read_fd
        self._chunker = chunker
        self._on_chunk = on_chunk
        self.chunks = 0
        self._thread = threading.Thread(target=self._run, name="audio-tap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                data = os.read(self._fd, 64 * FRAME_BYTES)
                if not data:
                    break
                for chunk in self._chunker.feed(data):
                    self._hand_on(chunk)
            for chunk in self._chunker.flush():
                self._hand_on(chunk)
        finally:
            os.close(self._fd)

    def _hand_on(self, chunk: ChunkAudio) -> None:
        try:
            self._on_chunk(chunk)
            self.chunks += 1
        except Exception:
            log.exception("a speech chunk at %.2fs could not be stored", chunk.start)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
