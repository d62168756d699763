"""Timeline truth: a recording never chains media twice and never claims wall-clock time
its source did not take, and `verify` checks time, not only bytes.

Real ffmpeg publishes real HLS over HTTP on 127.0.0.1; the recorder runs as the
`livewitness` command."""

from __future__ import annotations

import functools
import itertools
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from core.egress import EgressPolicy
from core.errors import IntegrityError
from core.settings import Settings
from core.timeutil import iso, utc_now
from evidence.verify import verify_stream
from recorder.hls import (
    HlsSegment,
    MediaPlaylist,
    local_playlist,
    media_sequence_of,
    read_playlist,
    select_feed,
)
from storage.blob_keys import entry_key
from storage.blobs.protocol import sha256_file
from storage.chain import ClosedSegment
from storage.models import ManifestEntry, Segment
from storage.stores import Stores, open_stores
from tests.support.chain import chain_of
from tests.support.cli import LIVEWITNESS, cli_env, cli_in_process, run_cli
from tests.support.media import make_test_video
from tests.support.speech import clip_path

TALK_SECONDS = 16.0
COMEBACK_SECONDS = 8.0
TOLERANCE = 0.5  # storage.chain.TIMELINE_TOLERANCE_SECONDS, written out so a change shows


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory, ffmpeg: str) -> Path:
    """A short sales talk: 16 s of H.264/AAC with speech and a key frame every 2 s."""
    return make_test_video(
        ffmpeg,
        tmp_path_factory.mktemp("talk") / "talk.mp4",
        TALK_SECONDS,
        audio=clip_path("sales_1"),
    )


@pytest.fixture(scope="module")
def comeback(tmp_path_factory: pytest.TempPathFactory, ffmpeg: str) -> Path:
    """What the streamer sends when back: other media (a tone, not the talk)."""
    return make_test_video(
        ffmpeg, tmp_path_factory.mktemp("comeback") / "comeback.mp4", COMEBACK_SECONDS
    )


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class HlsPublisher:
    """ffmpeg publishing a video once, at native rate, as live HLS served on 127.0.0.1:
    when the video ends ffmpeg leaves its last six segments listed with #EXT-X-ENDLIST,
    as the talk the opposing party published did."""

    def __init__(self, ffmpeg: str, directory: Path) -> None:
        self.ffmpeg = ffmpeg
        self.directory = directory
        directory.mkdir(parents=True)
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/live.m3u8"
        self.playlist = directory / "live.m3u8"

    def publish(self, video: Path, start_number: int = 0) -> subprocess.Popen[bytes]:
        publisher = subprocess.Popen(
            [self.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re"]
            + ["-i", str(video), "-c", "copy", "-f", "hls", "-hls_time", "2"]
            + ["-hls_list_size", "6", "-hls_flags", "delete_segments"]
            + ["-start_number", str(start_number), str(self.playlist)]
        )
        deadline = time.monotonic() + 20
        while self.media_sequence() is None or self.media_sequence() < start_number:  # type: ignore[operator]
            assert time.monotonic() < deadline, "the publisher listed nothing"
            time.sleep(0.1)
        return publisher

    def media_sequence(self) -> int | None:
        try:
            found = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", self.playlist.read_text())
        except FileNotFoundError:
            return None
        return int(found.group(1)) if found else None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def publisher(ffmpeg: str, tmp_path: Path) -> Iterator[HlsPublisher]:
    published = HlsPublisher(ffmpeg, tmp_path / "hls")
    yield published
    published.close()


def assert_one_clean_line(result: Any, *fragments: str) -> str:
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return str(lines[0])


def end_of(entry: ManifestEntry | Segment) -> datetime:
    if isinstance(entry, Segment):
        return entry.starts_at + timedelta(seconds=entry.duration)
    return entry.ends_at


def assert_time_told_once(segments: list[Segment], entries: list[ManifestEntry]) -> None:
    """No two segments share bytes; no entry starts before the one before it ends."""
    hashes = [s.sha256 for s in segments]
    assert len(set(hashes)) == len(hashes), hashes
    for before, after in itertools.pairwise(entries):
        assert after.starts_at >= before.ends_at - timedelta(seconds=TOLERANCE), (
            before.idx,
            before.ends_at,
            after.starts_at,
        )


def links(entries: list[ManifestEntry]) -> list[tuple[int, str]]:
    return [(e.idx, e.sha256) for e in entries]


def verify_ok(home: Path, stream: str) -> dict[str, Any]:
    result = run_cli(home, "verify", "--stream", stream, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def stream_status(home: Path, stream: str) -> str:
    with open_stores(Settings(home=home)) as stores:
        return stores.catalog.get_stream(stream).status


# -- live sources that end, and come back -------------------------------------------------
@pytest.mark.slow
def test_a_source_that_ends_is_recorded_once_and_resumes_after_a_gap_when_it_comes_back(
    home: Path, publisher: HlsPublisher, talk: Path, comeback: Path
) -> None:
    source = publisher.publish(talk)
    recorder = subprocess.Popen(
        [LIVEWITNESS, "record", publisher.url, "--stream", "talk", "--segment-seconds", "4"],
        env=cli_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    source.wait(timeout=60)
    source_ended = time.monotonic()
    out, errors = recorder.communicate(timeout=60)
    assert recorder.returncode == 0, errors
    # It ends by itself soon after the source does: no replay of the last six segments.
    assert time.monotonic() - source_ended <= 30
    assert "ended by source ended" in out
    segments, entries = chain_of(home, "talk")
    total = sum(s.duration for s in segments)
    assert abs(total - TALK_SECONDS) <= 2.0, (total, [s.duration for s in segments])
    assert_time_told_once(segments, entries)
    assert [e.kind for e in entries] == ["segment"] * len(segments) + ["end"]
    assert entries[-1].reason == "source ended"
    assert abs((entries[-1].ends_at - end_of(segments[-1])).total_seconds()) < 0.001
    assert stream_status(home, "talk") == "ended"
    assert verify_ok(home, "talk")["ends"] == 1

    # The ended playlist still lists the talk: recording it again chains nothing.
    again = run_cli(home, "record", publisher.url, "--stream", "talk", timeout=60)
    assert again.returncode == 0, again.stderr
    assert links(chain_of(home, "talk")[1]) == links(entries)

    # The streamer comes back: new media, numbered on from where the talk ended.
    source = publisher.publish(comeback, start_number=100)
    resumed = run_cli(home, "record", publisher.url, "--stream", "talk", "--segment-seconds", "4")
    source.wait(timeout=30)
    assert resumed.returncode == 0, resumed.stderr
    segments, after = chain_of(home, "talk")
    assert links(after[: len(entries)]) == links(entries)
    new = after[len(entries) :]
    assert new[0].kind == "gap" and new[0].starts_at == entries[-1].ends_at
    assert [e.kind for e in new[1:]] == ["segment"] * (len(new) - 2) + ["end"]
    later = sum(s.duration for s in segments if s.entry_idx > entries[-1].idx)
    assert abs(later - COMEBACK_SECONDS) <= 2.0, later
    assert_time_told_once(segments, after)
    report = verify_ok(home, "talk")
    assert (report["gaps"], report["ends"]) == (1, 2)


# -- the source's own continuity ---------------------------------------------------------
def hls(first: int, count: int, ended: bool = False) -> MediaPlaylist:
    segments = tuple(
        HlsSegment(seq, f"http://127.0.0.1/live{seq}.ts", 2.0)
        for seq in range(first, first + count)
    )
    return MediaPlaylist("http://127.0.0.1/live.m3u8", 3, 2.0, segments, ended, vod=False)


def test_only_media_sequence_numbers_not_chained_are_fed() -> None:
    seqs = lambda feed: [s.seq for s in feed]  # noqa: E731
    assert seqs(select_feed(hls(40, 6), None)) == [43, 44, 45]  # a new recording: live edge
    assert seqs(select_feed(hls(40, 6), 43)) == [44, 45]  # after what the stream holds
    assert seqs(select_feed(hls(40, 6, ended=True), 45)) == []  # ended: all chained already
    assert seqs(select_feed(hls(40, 6, ended=True), 50)) == []
    assert seqs(select_feed(hls(0, 2), 45)) == [0, 1]  # a publisher that started over
    assert seqs(select_feed(hls(38, 6), 45)) == []  # a stale copy is not a new start
    # Output media seconds to source segments, by EXTINF: a span holds the segments it
    # draws from, and never one ffmpeg did not open.
    fed = [(44, 2.0), (45, 2.0), (46, 2.0)]
    assert media_sequence_of(fed, 0.0, 4.04, None) == (44, 45)
    assert media_sequence_of(fed, 4.04, 6.0, None) == (46, 46)
    assert media_sequence_of(fed, 0.0, 6.0, 45) == (44, 45)


def test_a_master_playlist_is_followed_by_its_best_variant(publisher: HlsPublisher) -> None:
    root = publisher.directory
    (root / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nlow/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=2400000\nhigh/index.m3u8\n"
    )
    (root / "high").mkdir()
    (root / "high" / "index.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n"
        '#EXT-X-MAP:URI="init.mp4"\n#EXT-X-KEY:METHOD=AES-128,URI="/keys/k1",IV=0x01\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:00.000Z\n"
        "#EXTINF:2.000,\ns7.m4s\n#EXTINF:2.000,\ns8.m4s\n"
    )
    base = publisher.url.rsplit("/", 1)[0]
    playlist = read_playlist(f"{base}/master.m3u8", timeout=5, policy=EgressPolicy(["127.0.0.1"]))
    assert playlist.url == f"{base}/high/index.m3u8" and not playlist.ended
    assert [(s.seq, s.uri) for s in playlist.segments] == [
        (7, f"{base}/high/s7.m4s"),
        (8, f"{base}/high/s8.m4s"),
    ]
    assert playlist.segments[0].program_date_time == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    copy = local_playlist(playlist.segments, 7, 2.0, ended=True).splitlines()
    # ffmpeg reads the copy from disk: every URI in it is absolute, each tag said once.
    assert copy.count(f'#EXT-X-MAP:URI="{base}/high/init.mp4"') == 1
    assert copy.count(f'#EXT-X-KEY:METHOD=AES-128,URI="{base}/keys/k1",IV=0x01') == 1
    assert "#EXT-X-MEDIA-SEQUENCE:7" in copy and copy[-1] == "#EXT-X-ENDLIST"


# -- sources that are not live ------------------------------------------------------------
def assert_nothing_chained(home: Path, stream: str) -> None:
    with open_stores(Settings(home=home)) as stores:
        row = stores.catalog.get_stream(stream)
        assert row.status != "recording"
        assert not stores.catalog.entries(row.id)


def test_a_vod_playlist_is_refused_as_live_at_once(
    home: Path, publisher: HlsPublisher, talk: Path, ffmpeg: str
) -> None:
    subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(talk)]
        + ["-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"]
        + [str(publisher.directory / "vod.m3u8")],
        check=True,
    )
    began = time.monotonic()
    result = run_cli(
        home, "record", publisher.url.replace("live.m3u8", "vod.m3u8"), "--stream", "v"
    )
    assert time.monotonic() - began <= 10
    assert result.returncode == 2
    assert_one_clean_line(result, "not a live source", "VOD", "livewitness ingest")
    assert_nothing_chained(home, "v")


def test_a_file_without_realtime_is_refused_as_live_at_once(home: Path, talk: Path) -> None:
    began = time.monotonic()
    result = run_cli(home, "record", str(talk), "--stream", "f")
    assert time.monotonic() - began <= 10
    assert result.returncode == 2
    assert_one_clean_line(result, "not a live source", "livewitness ingest", "--realtime")
    assert_nothing_chained(home, "f")


def test_media_faster_than_real_time_is_refused_within_seconds(
    home: Path, publisher: HlsPublisher, talk: Path, ffmpeg: str
) -> None:
    """A recording served over HTTP (not a playlist) reaches ffmpeg as fast as the network
    goes: its media runs ahead of the wall clock at once."""
    subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(talk)]
        + ["-c", "copy", "-f", "mpegts", str(publisher.directory / "room.ts")],
        check=True,
    )
    began = time.monotonic()
    url = publisher.url.replace("live.m3u8", "room.ts")
    result = run_cli(home, "record", url, "--stream", "fast", "--segment-seconds", "4")
    assert time.monotonic() - began <= 10
    assert result.returncode == 2
    line = assert_one_clean_line(result, "not a live source", "livewitness ingest")
    assert re.search(r"\d+\.\ds of media arrived in \d+\.\ds", line), line
    assert_nothing_chained(home, "fast")


# -- ingest, interrupted and run again ----------------------------------------------------
KILLED_INGEST = """
import os, signal, sys
from storage.blobs.local import LocalBlobStore

real_put_file = LocalBlobStore.put_file
segments_written = 0

def put_file(self, key, path, sha256):
    global segments_written
    if "/segments/" in key:
        segments_written += 1
        if segments_written == 4:  # half way: the process dies at the real write call
            os.kill(os.getpid(), signal.SIGKILL)
    return real_put_file(self, key, path, sha256)

LocalBlobStore.put_file = put_file
from cli.main import app
app(sys.argv[1:], prog_name="livewitness")
"""


def test_an_ingest_killed_half_way_resumes_and_never_covers_time_twice(
    home: Path, talk: Path
) -> None:
    started = iso(utc_now() - timedelta(hours=2))
    args = ["ingest", str(talk), "--stream", "replay", "--started-at", started]
    args += ["--segment-seconds", "2", "--no-transcribe"]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_INGEST, *args],
        env=cli_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    before, _ = chain_of(home, "replay")
    assert len(before) == 3

    again = run_cli(home, *args)
    assert again.returncode == 0, again.stderr
    assert "resuming an interrupted ingest" in again.stdout
    segments, entries = chain_of(home, "replay")
    assert [(s.seq, s.sha256) for s in segments[:3]] == [(s.seq, s.sha256) for s in before]
    assert_time_told_once(segments, entries)
    # One contiguous cover of the file from its start, then the end of the import.
    assert segments[0].starts_at == datetime.fromisoformat(started.replace("Z", "+00:00"))
    for earlier, later in itertools.pairwise(segments):
        assert abs((later.starts_at - end_of(earlier)).total_seconds()) <= 0.01
    assert abs(sum(s.duration for s in segments) - TALK_SECONDS) <= 0.5
    assert [e.kind for e in entries] == ["segment"] * len(segments) + ["end"]
    assert entries[-1].reason == "file ingested"
    assert stream_status(home, "replay") == "ended"
    verify_ok(home, "replay")

    # The same file again, and another file over the same time: refused, one line each.
    twice = run_cli(home, *args)
    assert twice.returncode == 2
    assert_one_clean_line(twice, "already ingested into stream 'replay'")
    other = make_test_video(Settings().ffmpeg, home.parent / "other.mp4", 4)
    overlapping = run_cli(home, "ingest", str(other), *args[2:])
    assert overlapping.returncode == 2
    assert_one_clean_line(overlapping, "would cover it twice")
    assert links(chain_of(home, "replay")[1]) == links(entries)


# -- verify checks time -------------------------------------------------------------------
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def closed(tmp_path: Path, n: int, start: datetime, payload: bytes | None = None) -> ClosedSegment:
    path = tmp_path / f"local-{n}.ts"
    path.write_bytes(payload or f"segment {n} ".encode() * 300)
    return ClosedSegment(path, sha256_file(path), path.stat().st_size, start, 10.0, f"s/{n}")


def overlapping(stores: Stores, sid: int, tmp_path: Path) -> None:
    stores.chain.append_segment(sid, "x", closed(tmp_path, 0, T0))
    stores.chain.append_segment(sid, "x", closed(tmp_path, 1, T0 + timedelta(seconds=6)))


def backdated(stores: Stores, sid: int, tmp_path: Path) -> None:
    """A segment that ends after it was chained: time claimed before it passed."""
    stores.chain.append_segment(sid, "x", closed(tmp_path, 0, T0))
    soon = utc_now() + timedelta(seconds=30)
    stores.chain.append_segment(sid, "x", closed(tmp_path, 1, soon))


def repeated(stores: Stores, sid: int, tmp_path: Path) -> None:
    same = b"the same media" * 300
    stores.chain.append_segment(sid, "x", closed(tmp_path, 0, T0, same))
    stores.chain.append_segment(sid, "x", closed(tmp_path, 1, T0 + timedelta(seconds=10), same))


def without_end(stores: Stores, sid: int, tmp_path: Path) -> None:
    """A first session ended cleanly; the second has no end, yet the stream is stopped."""
    stores.chain.append_segment(sid, "x", closed(tmp_path, 0, T0))
    stores.chain.append_end(sid, "x", "stopped", T0 + timedelta(seconds=10))
    stores.chain.append_segment(sid, "x", closed(tmp_path, 1, T0 + timedelta(minutes=5)))


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        (overlapping, "the same time is claimed twice"),
        (backdated, "claims time that had not passed yet"),
        (repeated, "repeats the media of entry 0"),
        (without_end, "has no end entry, yet the stream is stopped"),
    ],
)
def test_verify_fails_on_time_told_wrong(
    stores: Stores, home: Path, tmp_path: Path, build: Any, problem: str
) -> None:
    sid = stores.chain.open_stream("x")
    build(stores, sid, tmp_path)
    stores.chain.sign_head(sid, "x")
    stores.catalog.set_status(sid, "stopped")
    named = entry_key("x", len(stores.catalog.entries(sid)) - 1)
    with pytest.raises(IntegrityError) as caught:
        verify_stream(stores.catalog, stores.blobs, stores.settings.signing_keys_dir, "x")
    assert (caught.value.artifact, problem in caught.value.problem) == (named, True), str(
        caught.value
    )
    result = cli_in_process(home, "verify", "--stream", "x")
    assert result.exit_code == 1
    assert f"FAILED {named}: " in result.stderr and problem in result.stderr


def test_a_clean_stop_verifies_and_a_stop_without_its_end_entry_does_not(
    stores: Stores, tmp_path: Path
) -> None:
    """The control: the same chain with its end entry verifies; without it (format 2, which
    came with end entries) it does not. A format-1 chain from before end entries still
    verifies without one: tests/test_formats.py checks that."""
    for name in ("ended", "unended"):
        (tmp_path / name).mkdir()
        sid = stores.chain.open_stream(name)
        stores.chain.append_segment(sid, name, closed(tmp_path / name, 0, T0, name.encode() * 99))
        stores.chain.append_gap(
            sid, name, T0 + timedelta(seconds=10), T0 + timedelta(seconds=20), "drop"
        )
        if name == "ended":
            stores.chain.append_end(sid, name, "stopped", T0 + timedelta(seconds=20))
        stores.chain.sign_head(sid, name)
        stores.catalog.set_status(sid, "stopped")
        if name == "unended":
            with pytest.raises(IntegrityError, match="no end entry") as caught:
                verify_stream(stores.catalog, stores.blobs, stores.settings.signing_keys_dir, name)
            assert caught.value.artifact == entry_key(name, 1)
            continue
        report = verify_stream(stores.catalog, stores.blobs, stores.settings.signing_keys_dir, name)
        assert (report.segments, report.gaps, report.ends) == (1, 1, 1)
