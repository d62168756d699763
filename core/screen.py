"""On-screen text as records: what OCR read in a stream's sampled frames, on the wall
clock, and the rule that joins a line seen on consecutive frames into one record.

A worker reads one segment at a time (transcriber/ocr): a line is one record from the
first to the last consecutive sampled frame it was seen in (:func:`merge_frames`); one
seen in a segment's last frame and the next segment's first is joined when read
(:func:`join_segments`), so the result does not depend on which segment was read first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from core.text import compact, search_form
from core.timeutil import iso

Box = tuple[tuple[float, float], ...]  # four corners in frame pixels, clockwise from top left


@dataclass(frozen=True, slots=True)
class ScreenLine:
    """One line of on-screen text, from the first to the last frame it was seen in."""

    stream: str
    segment_seq: int
    text: str
    box: Box
    confidence: float
    first_seen_at: datetime
    last_seen_at: datetime
    first_offset: float  # seconds from the stream's start
    last_offset: float
    keyframe_key: str  # the stored JPEG of the moment it was first seen
    open_start: bool = False  # seen in its segment's first sampled frame
    open_end: bool = False  # ... and in its last
    segments: tuple[int, ...] = field(default=())  # every segment it spans, when joined

    @property
    def search(self) -> str:
        """The text as search matches it (width, script and numerals folded)."""
        return search_form(self.text)

    def to_json(self) -> dict[str, Any]:
        """The line as the API and `livewitness screen --json` show it."""
        return {
            "text": self.text,
            "search": self.search,
            "box": [list(corner) for corner in self.box],
            "confidence": round(self.confidence, 3),
            "first_seen": iso(self.first_seen_at),
            "last_seen": iso(self.last_seen_at),
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "segments": list(self.segments or (self.segment_seq,)),
            "keyframe": self.keyframe_key,
        }


@dataclass(frozen=True, slots=True)
class ReadLine:
    """A line as the OCR engine read it in one frame."""

    text: str
    box: Box
    confidence: float


@dataclass(frozen=True, slots=True)
class SampledFrame:
    """A frame sampled from a segment, its stored JPEG and the lines read in it."""

    at: datetime
    offset: float  # from the stream's start
    keyframe_key: str
    lines: tuple[ReadLine, ...]


def same_text(text: str) -> str:
    """What two readings must share to be the same line (width, script, spaces folded)."""
    return compact(text)


def merge_frames(stream: str, segment_seq: int, frames: Sequence[SampledFrame]) -> list[ScreenLine]:
    """A segment's frames (in time order) to records: a line read on consecutive sampled
    frames is one record; one that disappears and comes back is two."""
    open_lines: dict[str, ScreenLine] = {}
    done: list[ScreenLine] = []
    for number, frame in enumerate(frames):
        seen: dict[str, ScreenLine] = {}
        for line in frame.lines:
            key = same_text(line.text)
            if not key or key in seen:
                continue
            before = open_lines.get(key)
            if before is not None:
                seen[key] = replace(
                    before,
                    confidence=max(before.confidence, line.confidence),
                    last_seen_at=frame.at,
                    last_offset=frame.offset,
                )
            else:
                seen[key] = ScreenLine(
                    stream=stream,
                    segment_seq=segment_seq,
                    text=line.text,
                    box=line.box,
                    confidence=line.confidence,
                    first_seen_at=frame.at,
                    last_seen_at=frame.at,
                    first_offset=frame.offset,
                    last_offset=frame.offset,
                    keyframe_key=frame.keyframe_key,
                    open_start=number == 0,
                    segments=(segment_seq,),
                )
        done.extend(line for key, line in open_lines.items() if key not in seen)
        open_lines = seen
    last = len(frames) - 1
    done.extend(replace(line, open_end=last >= 0) for line in open_lines.values())
    return sorted(done, key=lambda line: (line.first_seen_at, line.text))


def join_segments(lines: Sequence[ScreenLine]) -> list[ScreenLine]:
    """Records of neighbouring segments (in time order) joined where a line was seen in
    one segment's last sampled frame and the next segment's first."""
    out: list[ScreenLine] = []
    ending: dict[tuple[int, str], int] = {}  # (segment, text) -> index in out, open at its end
    for line in sorted(lines, key=lambda x: (x.first_seen_at, x.segment_seq)):
        key = same_text(line.text)
        at = ending.get((line.segment_seq - 1, key)) if line.open_start else None
        if at is not None:
            before = out[at]
            out[at] = replace(
                before,
                confidence=max(before.confidence, line.confidence),
                last_seen_at=line.last_seen_at,
                last_offset=line.last_offset,
                open_end=line.open_end,
                segments=(*before.segments, line.segment_seq),
            )
            del ending[(line.segment_seq - 1, key)]
            if line.open_end:
                ending[(line.segment_seq, key)] = at
            continue
        out.append(line if line.segments else replace(line, segments=(line.segment_seq,)))
        if line.open_end:
            ending[(line.segment_seq, key)] = len(out) - 1
    return out
