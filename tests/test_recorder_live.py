"""End-to-end recording of a real live HLS source with real ffmpeg."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.settings import Settings
from storage.models import ManifestEntry
from storage.stores import open_stores
from tests.support.chain import assert_no_unexplained_holes, chain_of
from tests.support.cli import LIVEWITNESS, cli_env, run_cli
from tests.support.livesource import LiveHlsSource
from tests.support.media import make_test_video

pytestmark = pytest.mark.slow


def verify_ok(home: Path, stream: str) -> dict[str, object]:
    result = run_cli(home, "verify", "--stream", stream, "--json")
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def assert_contiguous(entries: list[ManifestEntry], tolerance: float = 0.1) -> None:
    for before, after in itertools.pairwise(entries):
        assert after.prev_sha256 == before.sha256
        assert abs((after.starts_at - before.ends_at).total_seconds()) <= tolerance, (
            before.idx,
            before.ends_at,
            after.starts_at,
        )


def test_records_sixty_seconds_of_live_hls(home: Path, live_source: LiveHlsSource) -> None:
    began = datetime.now(UTC)
    result = run_cli(home, "record", live_source.url, "--stream", "live-1", "--max-duration", "60")
    ended = datetime.now(UTC)
    assert result.returncode == 0, result.stderr
    segments, entries = chain_of(home, "live-1")
    # The session ends with an end entry saying why (issue 13), where its time ends.
    assert [e.kind for e in entries] == ["segment"] * len(segments) + ["end"]
    assert entries[-1].reason == "max duration"
    assert_contiguous(entries)
    assert 6 <= len(segments) <= 8
    assert all(s.duration <= 10.5 for s in segments[:-1])
    span = (segments[-1].starts_at - segments[0].starts_at).total_seconds() + segments[-1].duration
    total = sum(s.duration for s in segments)
    assert abs(total - span) <= 1.0
    # The recording covers the minute it ran: from the live edge it joined to the end.
    assert segments[0].starts_at >= began - timedelta(seconds=13)
    last_end = segments[-1].starts_at + timedelta(seconds=segments[-1].duration)
    assert abs((last_end - ended).total_seconds()) <= 3.0, (last_end, ended)
    assert abs(total - 60) <= 8
    report = verify_ok(home, "live-1")
    assert report["segments"] == len(segments) and report["gaps"] == 0
    print(
        f"segments={len(segments)} total={total:.2f} span={span:.2f} began={began} "
        f"first={segments[0].starts_at} last_end={last_end} ended={ended}"
    )


FAST_RECONNECT = {
    "LIVEWITNESS_STALL_TIMEOUT_SECONDS": "4",
    "LIVEWITNESS_CONNECT_TIMEOUT_SECONDS": "3",
    "LIVEWITNESS_RECONNECT_INITIAL_SECONDS": "0.5",
    "LIVEWITNESS_RECONNECT_MAX_SECONDS": "2",
    "LIVEWITNESS_SIGN_INTERVAL_SECONDS": "5",
}


def start_recorder(home: Path, url: str, stream: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [LIVEWITNESS, "record", url, "--stream", stream, *args],
        env=cli_env(home, **FAST_RECONNECT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stored_segments(home: Path, stream: str) -> list[Path]:
    return sorted((home / "blobs" / "streams" / stream / "segments").glob("*.ts"))


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_source_drop_becomes_a_gap_and_recording_resumes(
    home: Path, live_source: LiveHlsSource, ffmpeg: str, tmp_path: Path
) -> None:
    # The streamer comes back with new media: a restart replaying the bytes already
    # chained would be repeated media, which is never chained again (issue 13).
    new_media = make_test_video(ffmpeg, tmp_path / "new-media.mp4", seconds=30)
    recorder = start_recorder(home, live_source.url, "drop", "--segment-seconds", "4")
    wait_for(lambda: len(stored_segments(home, "drop")) >= 2, 40, "two segments")
    live_source.stop()
    killed = datetime.now(UTC)
    time.sleep(8)
    live_source.video = new_media
    live_source.start()
    restarted = datetime.now(UTC)
    wait_for(lambda: len(chain_of(home, "drop")[1]) >= 5, 60, "segments after the restart")
    time.sleep(4)
    recorder.send_signal(signal.SIGTERM)
    _out, errors = recorder.communicate(timeout=60)
    assert recorder.returncode == 0, errors
    _segments, entries = chain_of(home, "drop")
    gaps = [e for e in entries if e.kind == "gap"]
    assert len(gaps) == 1, [(e.kind, e.starts_at, e.ends_at) for e in entries]
    gap = gaps[0]
    assert gap.reason and gap.reason.startswith("source dropped")
    # The gap starts where the last segment before it ended, near the moment of the kill,
    # and ends near the moment the source came back.
    assert abs((gap.starts_at - killed).total_seconds()) <= 4, (gap.starts_at, killed)
    assert abs((gap.ends_at - restarted).total_seconds()) <= 4, (gap.ends_at, restarted)
    assert entries.index(gap) >= 2 and entries[-2].kind == "segment"
    assert entries[-1].kind == "end" and entries[-1].reason == "stopped"  # issue 13
    assert_contiguous(entries)
    report = verify_ok(home, "drop")
    # The live head was signed every few seconds (interval 5 s here), and at the stop.
    assert isinstance(report["signatures"], int) and report["signatures"] >= 4
    assert report["signed_head"] == len(entries) - 1


def ffmpeg_child(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        if "ffmpeg" in Path(f"/proc/{child}/cmdline").read_text():
            return int(child)
    raise AssertionError("recorder has no ffmpeg child")


def test_sigkill_of_the_recorder_loses_at_most_the_open_segment(
    home: Path, live_source: LiveHlsSource
) -> None:
    recorder = start_recorder(home, live_source.url, "crash", "--segment-seconds", "6")
    wait_for(lambda: len(stored_segments(home, "crash")) >= 2, 40, "two segments")
    ffmpeg_pid = ffmpeg_child(recorder.pid)
    time.sleep(3)  # mid-segment
    recorder.kill()
    recorder.wait()
    wait_for(lambda: not Path(f"/proc/{ffmpeg_pid}").exists(), 5, "ffmpeg to die with it")
    before, _ = chain_of(home, "crash")
    partial = list((home / "work" / "crash").glob("*/seg*.ts"))
    assert partial, "the open segment should be left on disk"

    again = run_cli(
        home,
        "record",
        live_source.url,
        "--stream",
        "crash",
        "--segment-seconds",
        "6",
        "--max-duration",
        "14",
        **FAST_RECONNECT,
    )
    assert again.returncode == 0, again.stderr
    after, entries = chain_of(home, "crash")
    # Every segment chained before the crash is still there, unchanged.
    assert [(s.seq, s.sha256) for s in after[: len(before)]] == [(s.seq, s.sha256) for s in before]
    # The partial segment was completed into the chain (it decodes) and marked recovered.
    recovered = [s for s in after if s.recovered]
    assert len(recovered) == 1 and recovered[0].seq == len(before)
    assert recovered[0].duration > 0.5
    # No time is unaccounted for: the restart either overlaps (the live playlist still held
    # what was missed) or the missed time is a gap entry.
    assert_no_unexplained_holes(entries)
    assert not list((home / "work" / "crash").glob("*/seg*.ts"))
    verify_ok(home, "crash")


def test_sigkill_of_ffmpeg_is_a_drop_and_the_partial_segment_is_kept(
    home: Path, live_source: LiveHlsSource
) -> None:
    recorder = start_recorder(home, live_source.url, "ffkill", "--segment-seconds", "6")
    wait_for(lambda: len(stored_segments(home, "ffkill")) >= 1, 40, "one segment")
    time.sleep(3)
    os.kill(ffmpeg_child(recorder.pid), signal.SIGKILL)
    wait_for(lambda: len(chain_of(home, "ffkill")[0]) >= 4, 60, "recording to resume")
    recorder.send_signal(signal.SIGTERM)
    _, errors = recorder.communicate(timeout=60)
    assert recorder.returncode == 0, errors
    segments, entries = chain_of(home, "ffkill")
    assert any(s.recovered for s in segments)
    assert entries[-2].kind == "segment" and entries[-1].kind == "end"  # issue 13
    assert_no_unexplained_holes(entries)
    verify_ok(home, "ffkill")


def test_two_streams_record_at_once_in_one_process(
    settings: Settings, live_source: LiveHlsSource, tmp_path: Path
) -> None:
    from recorder.pool import RecorderPool

    stores = open_stores(settings)
    pool = RecorderPool(settings, stores.chain)
    try:
        for name in ("room-a", "room-b"):
            pool.start(name, live_source.url, segment_seconds=4.0, max_duration=14.0)
        assert pool.recording() == ["room-a", "room-b"]
        summaries = [pool.wait(name, timeout=90) for name in ("room-a", "room-b")]
    finally:
        pool.stop_all()
        stores.close()
    for name, summary in zip(("room-a", "room-b"), summaries, strict=True):
        assert summary is not None and summary.segments >= 3
        assert summary.ended_by == "max duration"
        verify_ok(settings.home, name)


def ffmpeg_children(pid: int) -> list[int]:
    """ffmpeg processes whose parent is ``pid`` (started from any of its threads)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid and b"ffmpeg" in cmdline:
            found.append(int(stat.parent.name))
    return found


def stream_holder(home: Path, stream: str) -> str | None:
    stores = open_stores(Settings(home=home))
    try:
        return stores.catalog.get_stream(stream).recorder
    finally:
        stores.close()


def test_two_recorder_stages_record_a_stream_once_and_the_survivor_takes_over(
    home: Path, live_source: LiveHlsSource
) -> None:
    stores = open_stores(Settings(home=home))
    stream_id = stores.catalog.ensure_stream("shared", live_source.url).id
    stores.catalog.want_recording(stream_id, True, live_source.url)
    stores.close()
    env = cli_env(home, **FAST_RECONNECT, LIVEWITNESS_SEGMENT_SECONDS="4")
    stages = [
        subprocess.Popen(
            [LIVEWITNESS, "recorder"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        wait_for(lambda: len(stored_segments(home, "shared")) >= 2, 60, "two segments")
        holder = stream_holder(home, "shared")
        assert holder is not None
        pid = int(holder.split(":")[1])
        (first,) = [s for s in stages if s.pid == pid]
        (second,) = [s for s in stages if s.pid != pid]
        # Both stages want the stream; only the lease holder runs an ffmpeg for it.
        assert len(ffmpeg_children(first.pid)) == 1 and ffmpeg_children(second.pid) == []
        before = len(stored_segments(home, "shared"))
        first.kill()  # a crash: no release; the survivor sees the holder is gone
        first.wait()

        def survivor_holds() -> bool:
            now = stream_holder(home, "shared")
            return now is not None and now.split(":")[1] == str(second.pid)

        wait_for(survivor_holds, 30, "the other stage to take the stream over")
        wait_for(
            lambda: len(stored_segments(home, "shared")) >= before + 2,
            60,
            "segments recorded by the survivor",
        )
        assert len(ffmpeg_children(second.pid)) == 1
    finally:
        for stage in stages:
            if stage.poll() is None:
                stage.send_signal(signal.SIGTERM)
        for stage in stages:
            stage.communicate(timeout=60)
    assert stages[0].returncode in (0, -signal.SIGKILL) and stages[1].returncode in (
        0,
        -signal.SIGKILL,
    )
    assert stream_holder(home, "shared") is None  # released at the survivor's stop
    segments, entries = chain_of(home, "shared")
    assert [s.seq for s in segments] == list(range(len(segments)))
    assert len(segments) >= before + 2
    assert_no_unexplained_holes(entries)
    verify_ok(home, "shared")
