"""Moments: from a time in a stream to the media around it (clips, HLS, segment bytes).

Time. A *stream offset* is seconds from the start of the stream's first segment, the
offset every transcript word carries (:func:`transcriber.worker.build_document`); the
absolute time of an offset is that start plus the offset, gaps included.

Clips are cut from the original segments, downloaded from the blob store and checked
against their SHA-256, then joined with ffmpeg's concat demuxer. Each file is given its
catalogued duration, so the clip's timeline is the recorded time of its segments laid end
to end: time the recorder did not capture (a gap) is skipped, and :class:`ClipInfo` says
where each segment lands in the clip (``pieces``). The cut is a stream copy
(``-c copy``), which can only start on a key frame: a packet dump (no decoding) finds the
last key frame at or before the requested start, and the copy starts exactly there, so
the first picture is whole and :attr:`ClipInfo.start` is known to the frame. (ffmpeg
starts a copy at the first key packet whose *decode* time is at or after ``-ss``, so
``-ss`` is that decode time; ``-ss`` goes after ``-i``, because seeking an MPEG-TS input
is not exact.) A player seeks to :meth:`ClipInfo.offset_of` a moment (``at_offset`` for
the moment asked about). When copying fails or yields no picture, the range is
re-encoded (libx264/aac), which starts where asked. Both are MP4 with ``+faststart``
(the index before the media), so a browser plays them while they download.

Accuracy: within one segment the clip's timeline is the media's own; each segment is
placed at its catalogued start, which the recorder took at the key frame it was cut on,
while ffmpeg aligns a file at its first packet. Where audio precedes that key frame in
the file, the two differ by that much, a few tens of milliseconds.

HLS. :func:`hls_playlist` lists the stored segments as they are (no re-muxing), each
with its wall-clock ``#EXT-X-PROGRAM-DATE-TIME``; a discontinuity is marked wherever the
media timestamps may jump: after a gap entry, a jump in time, or a new capture session.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path

from core.errors import IntegrityError, InvalidInputError, NotFoundError, StorageError
from core.timeutil import iso
from core.transcript import (
    SegmentTranscript,
    Utterance,
    assemble_words,
    records_only,
    utterances_of,
)
from storage.blobs.protocol import sha256_bytes, sha256_file
from storage.models import Segment, Stream, Transcript
from storage.scratch import scratch
from storage.stores import Stores

CONTIGUOUS_SECONDS = 0.5  # closer than this, two segments play as one (as the transcriber)
# Shorter cuts can hold no whole audio or video frame, and ffmpeg writes an empty file:
# refused as bad input rather than failed as a server fault.
MIN_RANGE_SECONDS = 0.5
FFMPEG_TIMEOUT_SECONDS = 600.0

_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_STREAM_KIND = re.compile(r"^\s*Stream #\d+:\d+\S*: (Video|Audio):", re.MULTILINE)
_PACKET = re.compile(r"^\d+,\s*(-?\d+),\s*(-?\d+),\s*-?\d+,\s*\d+,\s*0x[0-9a-f]+(.*)$")
_FLAGS = re.compile(r"\bF=0x([0-9a-fA-F]+)")  # framecrc writes flags only when not just "key"
_TIME_BASE = re.compile(r"^#tb 0: (\d+)/(\d+)", re.MULTILINE)
NO_TIME = -(2**63)
_OUTPUT_PART = re.compile(r"^(?:Stream mapping:|Output #0)", re.MULTILINE)


@dataclass(frozen=True)
class ClipPiece:
    """Where one segment's recorded time lies in a clip."""

    seq: int
    starts_at: datetime
    duration: float
    clip_offset: float  # seconds into the clip where the segment starts; < 0 when cut into


@dataclass(frozen=True)
class ClipInfo:
    path: Path
    # Wall-clock time at 0 s into the clip: the first picture's (with B-frames a stream
    # copy shows it a frame or three later, its decode-to-display delay).
    start: datetime
    duration: float  # seconds of media in the file
    segments: list[int]
    reencoded: bool
    has_video: bool
    at: datetime  # the moment the clip was cut around
    at_offset: float  # seconds into the clip where ``at`` is shown
    pieces: tuple[ClipPiece, ...]

    def offset_of(self, moment: datetime) -> float:
        """Seconds into the clip where ``moment`` is shown (a gap maps to its end)."""
        return _timeline_offset(self.pieces, moment)

    def time_at(self, clip_seconds: float) -> datetime:
        """The wall-clock time shown ``clip_seconds`` into the clip."""
        return _timeline_time(self.pieces, clip_seconds)


# -- time --------------------------------------------------------------------------------
def require_aware(name: str, moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInputError(f"{name} {moment.isoformat()} has no time zone; add Z or +08:00")
    return moment


def _stream_with_start(stores: Stores, stream: str) -> tuple[Stream, datetime]:
    row = stores.catalog.get_stream(stream)
    first = stores.catalog.first_segment(row.id)
    if first is None:
        raise NotFoundError(f"stream {stream!r} has no recorded segments yet")
    return row, first.starts_at


def stream_offset_to_time(stores: Stores, stream: str, offset: float) -> datetime:
    """The absolute time of a stream offset (seconds from the first segment's start)."""
    if not math.isfinite(offset):
        raise InvalidInputError(f"offset must be a number of seconds, not {offset}")
    _row, start = _stream_with_start(stores, stream)
    return start + timedelta(seconds=offset)


def time_to_stream_offset(stores: Stores, stream: str, moment: datetime) -> float:
    """Seconds from the stream's first segment start to ``moment`` (as transcripts count)."""
    require_aware("time", moment)
    _row, start = _stream_with_start(stores, stream)
    return (moment - start).total_seconds()


def segments_covering(
    stores: Stores, stream: str, since: datetime, until: datetime
) -> list[Segment]:
    """Segments whose [start, start + duration) overlaps [since, until), in order."""
    require_aware("since", since)
    require_aware("until", until)
    if until <= since:
        raise InvalidInputError(
            f"empty time range: until ({iso(until)}) must be after since ({iso(since)})"
        )
    row = stores.catalog.get_stream(stream)
    covering = [
        s
        for s in stores.catalog.segments(row.id)
        if s.starts_at < until and s.starts_at + timedelta(seconds=s.duration) > since
    ]
    if not covering:
        raise InvalidInputError(
            f"nothing of stream {stream!r} was recorded between {iso(since)} and {iso(until)}"
        )
    return covering


def transcripts_around(
    stores: Stores, stream_id: int, covering: Sequence[Segment]
) -> list[Transcript]:
    """The stored transcripts of the covering segments and of their neighbours only (the
    previous one holds the start of a sentence running into the range, the next one the
    words at the last one's end), never the whole stream's."""
    if not covering:
        return []
    wanted = {s.seq for s in covering} | {covering[0].seq - 1, covering[-1].seq + 1}
    return list(stores.catalog.transcripts(stream_id, wanted))


def utterances_overlapping(
    transcripts: Sequence[Transcript], low: float, high: float
) -> list[Utterance]:
    """Whole utterances overlapping stream seconds [low, high) of consecutive transcripts."""
    stored = records_only(SegmentTranscript.from_json(json.loads(t.body)) for t in transcripts)
    # Whole utterances: a sentence cut at the range's edge could say the opposite of what
    # was said ("不是假一赔十" cut to "假一赔十").
    return [
        u for u in utterances_of(assemble_words(stored)) if u.end_offset > low and u.offset < high
    ]


# -- segments ----------------------------------------------------------------------------
def _segment(stores: Stores, stream: str, seq: int) -> Segment:
    row = stores.catalog.get_stream(stream)
    segment = stores.catalog.segment(row.id, seq)
    if segment is None:
        raise NotFoundError(f"stream {stream!r} has no segment {seq}")
    return segment


def segment_bytes(stores: Stores, stream: str, seq: int) -> bytes:
    """A stored segment, byte for byte, checked against its SHA-256 before it is served."""
    segment = _segment(stores, stream, seq)
    try:
        data = stores.blobs.get_bytes(segment.blob_key)
    except NotFoundError:  # catalogued, so it was stored: evidence has gone missing
        raise IntegrityError(segment.blob_key, "segment is missing") from None
    if len(data) != segment.size or sha256_bytes(data) != segment.sha256:
        raise IntegrityError(segment.blob_key, "segment does not match its SHA-256")
    return data


def download_segments(stores: Stores, segments: Sequence[Segment], directory: Path) -> list[Path]:
    """Copy segments out of the blob store as ``<seq>.ts``, each checked by SHA-256."""
    paths = []
    for segment in segments:
        path = directory / f"{segment.seq:08d}.ts"
        try:
            stores.blobs.download(segment.blob_key, path)
        except NotFoundError:
            raise IntegrityError(segment.blob_key, "segment is missing") from None
        if sha256_file(path) != segment.sha256:
            raise IntegrityError(segment.blob_key, "segment does not match its SHA-256")
        paths.append(path)
    return paths


# -- clips -------------------------------------------------------------------------------
def check_range_length(seconds: float) -> None:
    if seconds < MIN_RANGE_SECONDS:
        raise InvalidInputError(
            f"range shorter than {MIN_RANGE_SECONDS:g} s ({seconds:g} s): too short to cut"
        )


def check_clip_window(before: float, after: float, longest: float) -> None:
    if not (math.isfinite(before) and math.isfinite(after)) or before < 0 or after < 0:
        raise InvalidInputError("before and after must be zero or more seconds")
    if before + after <= 0:
        raise InvalidInputError("a clip needs some length: before + after must be above 0")
    check_range_length(before + after)
    if before + after > longest:
        raise InvalidInputError(
            f"a clip may be at most {longest:g}s long, not {before + after:g}s;"
            " export an evidence package for longer ranges"
        )


def cut_clip(
    stores: Stores,
    stream: str,
    at: datetime,
    before: float,
    after: float,
    out: Path,
    *,
    reencode: bool = False,
) -> ClipInfo:
    """An MP4 of the stream from ``at - before`` to ``at + after`` (see the module doc),
    at most ``settings.max_clip_seconds`` long; ``reencode`` starts it exactly there."""
    require_aware("at", at)
    check_clip_window(before, after, stores.settings.max_clip_seconds)
    since, until = at - timedelta(seconds=before), at + timedelta(seconds=after)
    covering = segments_covering(stores, stream, since, until)
    with scratch(stores.settings, "clip-segments-") as tmp:
        files = download_segments(stores, covering, tmp)
        return cut_segments(
            stores.settings.ffmpeg, covering, files, since, until, at, out, reencode=reencode
        )


def cut_segments(
    ffmpeg: str,
    segments: Sequence[Segment],
    files: Sequence[Path],
    since: datetime,
    until: datetime,
    at: datetime,
    out: Path,
    *,
    reencode: bool = False,
) -> ClipInfo:
    """Cut [since, until) out of local copies of consecutive segments into ``out``."""
    pieces = _concat_pieces(segments)
    first, last = _timeline_offset(pieces, since), _timeline_offset(pieces, until)
    if last <= first:
        raise InvalidInputError(f"nothing was recorded between {iso(since)} and {iso(until)}")
    if last - first < MIN_RANGE_SECONDS:
        raise InvalidInputError(
            f"range shorter than {MIN_RANGE_SECONDS:g} s: only {last - first:.3f} s was"
            f" recorded between {iso(since)} and {iso(until)}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    # Beside the output, so on the disk the output goes to (not the system temp dir).
    with tempfile.TemporaryDirectory(prefix=".concat-", dir=out.parent) as tmp:
        listing = Path(tmp) / "segments.ffconcat"
        listing.write_text(_ffconcat(segments, files), encoding="utf-8")
        key_packets, has_video, has_audio = _key_packets(ffmpeg, listing)
        try:
            reencoded, cut_at = True, first
            if not reencode:
                cut_at = _copy_origin(key_packets, first) if has_video else first
                _cut(ffmpeg, listing, cut_at, last, partial, copy=True, audio=has_audio)
                duration, got_video = _probe(ffmpeg, partial)
                reencoded = duration <= 0 or (has_video and not got_video)
            if reencoded:
                cut_at = first
                _cut(ffmpeg, listing, cut_at, last, partial, copy=False, audio=has_audio)
                duration, got_video = _probe(ffmpeg, partial)
                if duration <= 0:
                    raise StorageError(f"ffmpeg made an empty clip of {iso(since)}-{iso(until)}")
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)
    shifted = tuple(
        ClipPiece(p.seq, p.starts_at, p.duration, p.clip_offset - cut_at) for p in pieces
    )
    return ClipInfo(
        path=out,
        start=_timeline_time(pieces, cut_at),
        duration=duration,
        segments=[s.seq for s in segments],
        reencoded=reencoded,
        has_video=got_video,
        at=at,
        at_offset=round(_timeline_offset(shifted, at), 3),
        pieces=shifted,
    )


def _concat_pieces(segments: Sequence[Segment]) -> tuple[ClipPiece, ...]:
    pieces, offset = [], 0.0
    for segment in segments:
        pieces.append(ClipPiece(segment.seq, segment.starts_at, segment.duration, offset))
        offset += segment.duration
    return tuple(pieces)


def _timeline_offset(pieces: Sequence[ClipPiece], moment: datetime) -> float:
    """Where ``moment`` lies on the timeline of ``pieces``, clamped to what they hold."""
    for piece in pieces:
        into = (moment - piece.starts_at).total_seconds()
        if into < piece.duration:
            return piece.clip_offset + max(0.0, into)
    return pieces[-1].clip_offset + pieces[-1].duration


def _timeline_time(pieces: Sequence[ClipPiece], offset: float) -> datetime:
    starts = [p.clip_offset for p in pieces]
    piece = pieces[max(0, bisect.bisect_right(starts, offset) - 1)]
    return piece.starts_at + timedelta(seconds=offset - piece.clip_offset)


def _ffconcat(segments: Sequence[Segment], files: Sequence[Path]) -> str:
    # Each file's catalogued duration places the next one, so the clip's timeline is the
    # catalog's recorded time (ffmpeg's own guess from the last packet is a frame off).
    lines = ["ffconcat version 1.0"]
    for segment, path in zip(segments, files, strict=True):
        quoted = str(path.resolve()).replace("'", "'\\''")
        lines += [f"file '{quoted}'", f"duration {segment.duration:.6f}"]
    return "\n".join(lines) + "\n"


def _run(ffmpeg: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [ffmpeg, "-hide_banner", "-nostdin", *args],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=FFMPEG_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise StorageError(f"ffmpeg took over {FFMPEG_TIMEOUT_SECONDS:g}s to cut a clip") from None


def _input_section(text: str) -> str:
    """ffmpeg's description of its input, without the output streams listed after it."""
    section = text[max(text.find("Input #0"), 0) :]
    return _OUTPUT_PART.split(section, maxsplit=1)[0]


@dataclass(frozen=True)
class _KeyPacket:
    dts: Fraction  # seconds on the concat timeline, exact (pts × time base)
    pts: Fraction


def _key_packets(ffmpeg: str, listing: Path) -> tuple[list[_KeyPacket], bool, bool]:
    """The video key packets of the joined segments, and which kinds of media they hold.

    A packet dump (``-copyts -f framecrc``) reads every packet's raw times and flags
    without decoding anything.
    """
    result = _run(
        ffmpeg,
        ["-nostats", "-copyts", "-f", "concat", "-safe", "0", "-i", str(listing)]
        + ["-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"],
    )
    kinds = set(_STREAM_KIND.findall(_input_section(result.stderr)))
    if "Video" not in kinds and "Audio" not in kinds:
        last = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise StorageError(f"ffmpeg cannot read the stored segments: {last[0]}")
    base = _TIME_BASE.search(result.stdout)
    time_base = Fraction(int(base.group(1)), int(base.group(2))) if base else Fraction(1, 90000)
    packets = []
    for line in result.stdout.splitlines():
        found = _PACKET.match(line)
        if found is None:
            continue
        dts, pts, rest = int(found.group(1)), int(found.group(2)), found.group(3)
        flags = _FLAGS.search(rest)
        if (flags is None or int(flags.group(1), 16) & 1) and NO_TIME not in (dts, pts):
            packets.append(_KeyPacket(dts * time_base, pts * time_base))
    return packets, "Video" in kinds and bool(packets), "Audio" in kinds


def _copy_origin(packets: list[_KeyPacket], offset: float) -> float:
    """Where a stream copy of the key frame at or before ``offset`` must start (-ss).

    ffmpeg starts a copy at the first key packet whose *decode* time is at or after -ss,
    so -ss is that frame's decode time, floored to the microsecond. With B-frames the
    picture shows a few frames later than the decode time, which stays the clip's 0 s.
    """
    at = Fraction(offset).limit_denominator(1_000_000)
    earlier = [p for p in packets if p.pts <= at]
    chosen = earlier[-1] if earlier else packets[0]
    return max(0.0, math.floor(chosen.dts * 1_000_000) / 1_000_000)


def _cut(
    ffmpeg: str, listing: Path, start: float, end: float, out: Path, *, copy: bool, audio: bool
) -> None:
    # -ss after -i: ffmpeg reads from the first segment's start (a key frame, as the
    # recorder cuts there) and drops what comes before ``start``. Seeking the input
    # instead is not exact in MPEG-TS: it can land past the key frame asked for.
    # An -ss of 0 would drop a first key frame decoded before 0 (B-frames): leave it out.
    args = ["-y", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing)]
    args += ["-ss", f"{start:.6f}"] if start > 0 else []
    args += ["-t", f"{end - start:.6f}", "-map", "0:v:0?", "-map", "0:a:0?"]
    if copy:
        args += ["-c", "copy"] + (["-bsf:a", "aac_adtstoasc"] if audio else [])
    else:
        args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
        args += ["-c:a", "aac", "-b:a", "128k"]
    result = _run(ffmpeg, [*args, "-movflags", "+faststart", "-f", "mp4", str(out)])
    if result.returncode != 0:
        out.unlink(missing_ok=True)
        if not copy:  # a failed copy falls back to re-encoding; this is the last resort
            lines = result.stderr.strip().splitlines() or ["no output"]
            raise StorageError(f"ffmpeg could not cut the clip: {lines[-1]}")


def _probe(ffmpeg: str, path: Path) -> tuple[float, bool]:
    """(duration in seconds, has a video stream) of a media file; (0, False) if none."""
    if not path.exists() or path.stat().st_size == 0:
        return 0.0, False
    text = _input_section(_run(ffmpeg, ["-i", str(path)]).stderr)
    found = _DURATION.search(text)
    if found is None:
        return 0.0, False
    hours, minutes, seconds = found.groups()
    duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return duration, "Video" in _STREAM_KIND.findall(text)


# -- HLS ---------------------------------------------------------------------------------
def hls_playlist(stores: Stores, stream: str, segment_url: Callable[[int], str]) -> str:
    """An HLS media playlist of the stored segments: VOD once the stream has stopped,
    EVENT (and no end) while it is recording. ``segment_url(seq)`` says where each is."""
    row = stores.catalog.get_stream(stream)
    segments = stores.catalog.segments(row.id)
    live = row.status == "recording"
    if not segments and not live:
        raise NotFoundError(f"stream {stream!r} has no recorded segments")
    gap_indices = [e.idx for e in stores.catalog.entries(row.id) if e.kind == "gap"]
    longest = max((s.duration for s in segments), default=stores.settings.segment_seconds)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{max(1, math.ceil(round(longest, 3)))}",
        f"#EXT-X-MEDIA-SEQUENCE:{segments[0].seq if segments else 0}",
        f"#EXT-X-PLAYLIST-TYPE:{'EVENT' if live else 'VOD'}",
    ]
    previous: Segment | None = None
    for segment in segments:
        if previous is not None and _discontinuous(previous, segment, gap_indices):
            lines.append("#EXT-X-DISCONTINUITY")
        lines += [
            f"#EXT-X-PROGRAM-DATE-TIME:{iso(segment.starts_at)}",
            f"#EXTINF:{segment.duration:.3f},",
            segment_url(segment.seq),
        ]
        previous = segment
    if not live:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _discontinuous(previous: Segment, segment: Segment, gap_indices: Sequence[int]) -> bool:
    """Whether media timestamps may jump between two consecutive segments."""
    if any(previous.entry_idx < idx < segment.entry_idx for idx in gap_indices):
        return True
    jump = segment.starts_at - (previous.starts_at + timedelta(seconds=previous.duration))
    if abs(jump.total_seconds()) > CONTIGUOUS_SECONDS:
        return True
    # A new ffmpeg session (after a reconnect) starts its timestamps afresh.
    return _session(previous.capture) != _session(segment.capture)


def _session(capture: str) -> str:
    return capture.rpartition("/")[0]
