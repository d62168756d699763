"""Moments with real ffmpeg on real recorded segments: clips (stream copy and re-encoded,
across a gap), stream offsets, the HLS playlist and segment bytes.

The source is the 30 s Mandarin test video (a key frame every 2 s, 25 fps) recorded into
about 6 s segments. A clip's frames are matched to the source's frames by checksum, so
"the clip starts at X" and "the moment is Y seconds in" are checked picture by picture.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from core.errors import IntegrityError, InvalidInputError, LiveWitnessError, NotFoundError
from core.settings import Settings
from core.timeutil import iso
from evidence.moments import (
    cut_clip,
    hls_playlist,
    segment_bytes,
    segments_covering,
    stream_offset_to_time,
    time_to_stream_offset,
)
from storage.blobs.protocol import sha256_file
from storage.chain import ClosedSegment
from storage.models import Segment
from storage.stores import Stores, open_stores
from tests.support.cli import cli_in_process, run_cli
from tests.support.media import assert_plays, mp4_boxes
from tests.support.moments import T0, append_after_gap, one_line, record

FPS = 25
KEY_FRAME_SECONDS = 2.0
# The source's first picture comes 0.064 s after its first (audio) packet, which is what
# the recorder anchors at T0: AAC's 1024-sample priming at 16 kHz. Frame times are
# compared within this much.
FRAME_TOLERANCE = 0.1


def frame_checksums(ffmpeg: str, path: Path) -> list[str]:
    """The checksum of every decoded picture, in order (no frames dropped or repeated)."""
    result = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0"]
        + ["-fps_mode", "passthrough", "-f", "framecrc", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.split(",")[-1].strip() for line in result.stdout.splitlines() if line[:1] != "#"]


def media_kinds(ffmpeg: str, path: Path) -> set[str]:
    result = subprocess.run(
        [ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True, text=True
    )
    return set(re.findall(r"Stream #\S+: (Video|Audio):", result.stderr))


class SourceFrames:
    """Where a decoded picture comes from in the source video, as a wall-clock time."""

    def __init__(self, ffmpeg: str, video: Path, started_at: datetime = T0) -> None:
        self.checksums = frame_checksums(ffmpeg, video)
        self.started_at = started_at

    def time_of(self, checksum: str) -> datetime:
        assert self.checksums.count(checksum) == 1, "the picture is not unique in the source"
        return self.started_at + timedelta(seconds=self.checksums.index(checksum) / FPS)


# -- fixtures ----------------------------------------------------------------------------
@pytest.fixture
def recorded(stores: Stores, test_video: Path) -> list[Segment]:
    """A recording of one's own, for tests that change the stream."""
    return record(stores, test_video)


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, test_video: Path
) -> Iterator[tuple[Stores, list[Segment]]]:
    """One recording for the tests that only read it."""
    stores = open_stores(Settings(home=tmp_path_factory.mktemp("moments") / "home"))
    yield stores, record(stores, test_video)
    stores.close()


@pytest.fixture(scope="module")
def source(ffmpeg: str, test_video: Path) -> SourceFrames:
    return SourceFrames(ffmpeg, test_video)


# -- time --------------------------------------------------------------------------------
def test_offsets_count_from_the_first_segment_like_transcripts(
    shared: tuple[Stores, list[Segment]],
) -> None:
    stores, recorded = shared
    assert recorded[0].starts_at == T0
    assert stream_offset_to_time(stores, "shop", 0.0) == T0
    assert stream_offset_to_time(stores, "shop", 14.5) == T0 + timedelta(seconds=14.5)
    assert time_to_stream_offset(stores, "shop", T0 + timedelta(seconds=14.5)) == 14.5
    moment = recorded[2].starts_at + timedelta(seconds=1.25)
    offset = time_to_stream_offset(stores, "shop", moment)
    assert stream_offset_to_time(stores, "shop", offset) == moment


def test_segments_covering_a_range(shared: tuple[Stores, list[Segment]]) -> None:
    stores, recorded = shared

    def seqs(since: float, until: float) -> list[int]:
        chosen = segments_covering(
            stores, "shop", T0 + timedelta(seconds=since), T0 + timedelta(seconds=until)
        )
        return [s.seq for s in chosen]

    second = recorded[1]
    start = (second.starts_at - T0).total_seconds()
    end = start + second.duration
    assert seqs(start, end) == [1]  # [start, end) is half-open on both sides
    assert seqs(start + 0.1, end - 0.1) == [1]
    assert seqs(start - 0.1, end + 0.1) == [0, 1, 2]
    assert seqs(-100, 1000) == [s.seq for s in recorded]


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [
        (
            lambda stores: segments_covering(stores, "nope", T0, T0 + timedelta(seconds=5)),
            NotFoundError,
            "no stream",
        ),
        (
            lambda stores: segments_covering(stores, "shop", T0, T0),
            InvalidInputError,
            "empty time range",
        ),
        (
            lambda stores: segments_covering(stores, "shop", T0 + timedelta(seconds=9), T0),
            InvalidInputError,
            "must be after",
        ),
        (
            lambda stores: segments_covering(
                stores, "shop", T0 - timedelta(hours=2), T0 - timedelta(hours=1)
            ),
            InvalidInputError,
            "nothing of stream 'shop' was recorded",
        ),
        (
            lambda stores: segments_covering(stores, "shop", datetime(2026, 11, 20), T0),  # noqa: DTZ001
            InvalidInputError,
            "no time zone",
        ),
        (lambda stores: stream_offset_to_time(stores, "nope", 1.0), NotFoundError, "no stream"),
        (
            lambda stores: stream_offset_to_time(stores, "shop", math.nan),
            InvalidInputError,
            "offset",
        ),
        (lambda stores: hls_playlist(stores, "nope", str), NotFoundError, "no stream"),
        (lambda stores: segment_bytes(stores, "shop", 99), NotFoundError, "no segment 99"),
        (
            lambda stores: cut_clip(stores, "shop", T0, 200, 101, Path("x.mp4")),
            InvalidInputError,
            "at most 300s",
        ),
        (
            lambda stores: cut_clip(stores, "shop", T0, -1, 5, Path("x.mp4")),
            InvalidInputError,
            "zero or more",
        ),
        (
            lambda stores: cut_clip(stores, "shop", T0, 0, 0, Path("x.mp4")),
            InvalidInputError,
            "some length",
        ),
        (
            lambda stores: cut_clip(stores, "shop", T0 + timedelta(hours=1), 5, 5, Path("x.mp4")),
            InvalidInputError,
            "nothing of stream",
        ),
    ],
)
def test_bad_requests_get_one_readable_line(
    shared: tuple[Stores, list[Segment]],
    call: object,
    error: type[LiveWitnessError],
    fragment: str,
) -> None:
    stores = shared[0]
    with pytest.raises(error) as caught:
        call(stores)  # type: ignore[operator]
    assert fragment in one_line(caught.value)


# -- clips -------------------------------------------------------------------------------
def test_stream_copy_clip_starts_on_the_key_frame_it_reports(
    shared: tuple[Stores, list[Segment]], ffmpeg: str, source: SourceFrames, tmp_path: Path
) -> None:
    stores = shared[0]
    at = T0 + timedelta(seconds=14.5)
    out = tmp_path / "clips" / "moment.mp4"
    info = cut_clip(stores, "shop", at, before=3.0, after=5.0, out=out)

    assert info.path == out and out.exists()
    assert not info.reencoded and info.has_video
    boxes = mp4_boxes(out)
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # +faststart
    assert_plays(ffmpeg, out)
    assert media_kinds(ffmpeg, out) == {"Video", "Audio"}
    requested_start = at - timedelta(seconds=3)
    lead = (requested_start - info.start).total_seconds()
    assert 0 <= lead <= KEY_FRAME_SECONDS + 0.1, info.start  # the key frame at or before
    assert info.duration == pytest.approx(8.0 + lead, abs=0.15)
    assert info.segments == [
        s.seq for s in segments_covering(stores, "shop", requested_start, at + timedelta(seconds=5))
    ]

    pictures = frame_checksums(ffmpeg, out)
    first_shown = source.time_of(pictures[0])
    assert abs((first_shown - info.start).total_seconds()) <= FRAME_TOLERANCE
    # A player that seeks to at_offset shows the moment asked about.
    assert info.at_offset == pytest.approx(3.0 + lead, abs=0.002)
    shown = source.time_of(pictures[round(info.at_offset * FPS)])
    assert abs((shown - at).total_seconds()) <= FRAME_TOLERANCE
    assert info.offset_of(at) == pytest.approx(info.at_offset, abs=0.001)
    assert abs((info.time_at(info.at_offset) - at).total_seconds()) < 0.002


def test_reencoded_clip_starts_where_asked(
    shared: tuple[Stores, list[Segment]], ffmpeg: str, source: SourceFrames, tmp_path: Path
) -> None:
    stores = shared[0]
    at = T0 + timedelta(seconds=14.5)
    info = cut_clip(stores, "shop", at, 3.0, 5.0, tmp_path / "exact.mp4", reencode=True)
    assert info.reencoded and info.has_video
    assert info.start == at - timedelta(seconds=3)
    assert info.at_offset == pytest.approx(3.0, abs=0.001)
    assert info.duration == pytest.approx(8.0, abs=0.15)
    boxes = mp4_boxes(info.path)
    assert boxes.index("moov") < boxes.index("mdat")
    assert_plays(ffmpeg, info.path)
    assert media_kinds(ffmpeg, info.path) == {"Video", "Audio"}
    assert len(frame_checksums(ffmpeg, info.path)) == pytest.approx(8.0 * FPS, abs=3)


def test_a_clip_across_a_gap_skips_it_and_still_lines_up(
    stores: Stores, recorded: list[Segment], ffmpeg: str, source: SourceFrames, tmp_path: Path
) -> None:
    again = append_after_gap(stores, tmp_path, "shop", gap_seconds=20.0)
    at = again.starts_at + timedelta(seconds=2.5)
    info = cut_clip(stores, "shop", at, before=26.0, after=2.0, out=tmp_path / "gap.mp4")
    assert info.segments == [recorded[-1].seq, again.seq]
    assert not info.reencoded
    assert info.duration < 28.0 - 15.0  # the 20 s without media are not in the clip
    assert_plays(ffmpeg, info.path)
    pictures = frame_checksums(ffmpeg, info.path)
    # The segment after the gap holds segment 1's pictures again: compare with those.
    shown = source.time_of(pictures[round(info.at_offset * FPS)])
    expected = recorded[1].starts_at + (at - again.starts_at)
    assert abs((shown - expected).total_seconds()) <= FRAME_TOLERANCE
    assert info.time_at(info.at_offset) == at


def test_cli_clip_around_an_offset(shared: tuple[Stores, list[Segment]], tmp_path: Path) -> None:
    home = shared[0].settings.home
    out = tmp_path / "cli.mp4"
    result = run_cli(
        home,
        "clip",
        "--stream",
        "shop",
        "--offset",
        "14.5",
        "--before",
        "3",
        "--after",
        "5",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "stream copy" in result.stdout and "from 2026-11-20T12:00:1" in result.stdout
    boxes = mp4_boxes(out)
    assert boxes.index("moov") < boxes.index("mdat")
    too_long = cli_in_process(
        home, "clip", "--stream", "shop", "--offset", "14.5", "--before", "400", "-o", str(out)
    )
    assert too_long.exit_code == 2
    assert too_long.stderr == (
        "error: a clip may be at most 300s long, not 420s; export an evidence package for"
        " longer ranges\n"
    )


# -- HLS and segments --------------------------------------------------------------------
def playlist_entries(text: str) -> list[tuple[bool, str, float, str]]:
    """(discontinuity before, program date-time, duration, uri) per segment."""
    entries, lines, discontinuity = [], text.splitlines(), False
    for at, line in enumerate(lines):
        if line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            extinf, uri = lines[at + 1], lines[at + 2]
            assert extinf.startswith("#EXTINF:") and extinf.endswith(",")
            duration = float(extinf.removeprefix("#EXTINF:").rstrip(","))
            entries.append((discontinuity, line.split(":", 1)[1], duration, uri))
            discontinuity = False
    return entries


def test_hls_playlist_of_a_stopped_stream(
    shared: tuple[Stores, list[Segment]], ffmpeg: str, tmp_path: Path
) -> None:
    stores, recorded = shared
    text = hls_playlist(stores, "shop", lambda seq: f"{seq}.ts")
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and "#EXT-X-VERSION:3" in lines
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines and lines[-1] == "#EXT-X-ENDLIST"
    longest = max(s.duration for s in recorded)
    assert f"#EXT-X-TARGETDURATION:{math.ceil(longest)}" in lines
    entries = playlist_entries(text)
    assert [e[1] for e in entries] == [iso(s.starts_at) for s in recorded]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e[1]) for e in entries)
    assert [e[2] for e in entries] == [pytest.approx(s.duration, abs=0.001) for s in recorded]
    assert [e[3] for e in entries] == [f"{s.seq}.ts" for s in recorded]
    assert not any(e[0] for e in entries)

    # ffmpeg plays it as HLS, from the served bytes.
    for segment in recorded:
        (tmp_path / f"{segment.seq}.ts").write_bytes(segment_bytes(stores, "shop", segment.seq))
    (tmp_path / "index.m3u8").write_text(text)
    assert_plays(ffmpeg, tmp_path / "index.m3u8")


def test_hls_marks_the_discontinuity_after_a_gap_and_follows_a_live_stream(
    stores: Stores, recorded: list[Segment], tmp_path: Path
) -> None:
    again = append_after_gap(stores, tmp_path, "shop", gap_seconds=20.0)
    entries = playlist_entries(hls_playlist(stores, "shop", lambda seq: f"s/{seq}"))
    assert [e[0] for e in entries] == [False] * len(recorded) + [True]
    assert entries[-1][1] == iso(again.starts_at)

    # While recording: an EVENT playlist without an end, so players keep reloading it.
    stores.catalog.set_status(stores.catalog.get_stream("shop").id, "recording")
    live = hls_playlist(stores, "shop", lambda seq: f"s/{seq}").splitlines()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in live and "#EXT-X-ENDLIST" not in live


def test_a_new_capture_session_is_a_discontinuity_even_without_a_gap(
    stores: Stores, recorded: list[Segment], tmp_path: Path
) -> None:
    """A reconnect within a second leaves no gap entry, but ffmpeg restarts its clock."""
    stream_id = stores.catalog.get_stream("shop").id
    last = recorded[-1]
    copy = tmp_path / "next.ts"
    stores.blobs.download(recorded[1].blob_key, copy)
    start = last.starts_at + timedelta(seconds=last.duration + 0.2)
    stores.chain.append_segment(
        stream_id,
        "shop",
        ClosedSegment(
            copy, sha256_file(copy), copy.stat().st_size, start, 6.0, "reconnect/seg0.ts"
        ),
    )
    entries = playlist_entries(hls_playlist(stores, "shop", str))
    assert [e[0] for e in entries] == [False] * len(recorded) + [True]


def test_segment_bytes_are_the_stored_bytes_and_checked(
    stores: Stores, recorded: list[Segment]
) -> None:
    segment = recorded[1]
    data = segment_bytes(stores, "shop", segment.seq)
    assert data == stores.blobs.get_bytes(segment.blob_key)
    path = stores.settings.blobs_dir / segment.blob_key
    path.chmod(0o644)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(IntegrityError) as caught:
        segment_bytes(stores, "shop", segment.seq)
    assert caught.value.artifact == segment.blob_key
