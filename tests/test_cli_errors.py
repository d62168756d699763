"""Bad input gets one readable line and a non-zero exit code, never a traceback."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.media import free_port


@pytest.fixture
def web_page(tmp_path: Path) -> Iterator[str]:
    """An HTTP server that answers with a web page, not media."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "live.m3u8").write_text("<html><body>not a playlist</body></html>")
    (root / "room.flv").write_text("<html><body>not a video</body></html>")
    port = free_port()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def assert_one_clean_line(result: object, *fragments: str) -> None:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.returncode != 0  # type: ignore[attr-defined]
    assert "Traceback" not in stderr and "Traceback" not in result.stdout  # type: ignore[attr-defined]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unreachable_url(home: Path) -> None:
    port = free_port()
    result = run_cli(
        home,
        "record",
        f"http://127.0.0.1:{port}/live.m3u8",
        "--stream",
        "x",
        LIVEWITNESS_CONNECT_TIMEOUT_SECONDS="3",
    )
    assert_one_clean_line(result, "cannot open", f"127.0.0.1:{port}")
    assert result.returncode == 2


def test_unreachable_rtmp(home: Path) -> None:
    result = run_cli(home, "record", f"rtmp://127.0.0.1:{free_port()}/live/x", "--stream", "x")
    assert_one_clean_line(result, "cannot open")


@pytest.mark.parametrize("path", ["live.m3u8", "room.flv"])
def test_url_that_serves_no_media(home: Path, web_page: str, path: str) -> None:
    result = run_cli(home, "record", f"{web_page}/{path}", "--stream", "x")
    assert_one_clean_line(result, "no audio or video")


def test_file_that_is_not_video(home: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("these are not the frames you are looking for\n" * 100)
    result = run_cli(home, "record", str(text), "--stream", "x")
    assert_one_clean_line(result, "no audio or video", "notes.mp4")


def test_missing_file(home: Path, tmp_path: Path) -> None:
    result = run_cli(home, "record", str(tmp_path / "nope.flv"), "--stream", "x")
    assert_one_clean_line(result, "cannot open", "no such file")


@pytest.mark.parametrize("name", ["../escape", "a b", "", "-dash", "x" * 65, "直播间"])
def test_bad_stream_name(home: Path, test_video: Path, name: str) -> None:
    result = run_cli(home, "record", str(test_video), "--stream", name)
    assert_one_clean_line(result, "invalid stream name")


def test_bad_segment_length(home: Path, test_video: Path) -> None:
    result = run_cli(home, "record", str(test_video), "--stream", "x", "--segment-seconds", "0")
    assert_one_clean_line(result, "segment length")


def test_verify_unknown_stream(home: Path) -> None:
    result = run_cli(home, "verify", "--stream", "ghost")
    assert_one_clean_line(result, "no stream named 'ghost'")


def test_unsupported_scheme(home: Path) -> None:
    result = run_cli(home, "record", "gopher://example/x", "--stream", "x")
    assert_one_clean_line(result, "unsupported source scheme")


def test_a_stream_being_recorded_is_refused(home: Path, test_video: Path) -> None:
    import fcntl
    import os

    home.mkdir(mode=0o700)  # private, as the service makes it: no warning line
    lock = home / "work" / "busy" / ".lock"
    lock.parent.mkdir(parents=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        result = run_cli(home, "record", str(test_video), "--stream", "busy")
    finally:
        os.close(fd)
    assert_one_clean_line(result, "already being recorded")


def test_a_stream_another_machine_records_is_refused_until_its_lease_runs_out(
    home: Path, test_video: Path
) -> None:
    import socket

    from core.settings import Settings
    from storage.stores import open_stores

    with open_stores(Settings(home=home)) as stores:
        stream_id = stores.catalog.ensure_stream("elsewhere").id
        assert stores.catalog.hold_recording(stream_id, "recorder-7.internal:41:ab12", 600)
        # A holder on this machine whose process is gone does not block (pid 2**22 + 1 is
        # above Linux's pid limit, so no process has it).
        gone = stores.catalog.ensure_stream("orphaned").id
        assert stores.catalog.hold_recording(gone, f"{socket.gethostname()}:4194305:cd34", 600)
    result = run_cli(home, "record", str(test_video), "--stream", "elsewhere")
    assert_one_clean_line(result, "being recorded by recorder-7.internal:41:ab12", "lease")
    # --realtime: a file is refused as live without it (tests/test_timeline.py).
    taken = run_cli(
        home, "record", str(test_video), "--stream", "orphaned", "--max-duration", "3", "--realtime"
    )
    assert taken.returncode == 0, taken.stderr
    with open_stores(Settings(home=home)) as stores:
        assert stores.catalog.get_stream("elsewhere").recorder == "recorder-7.internal:41:ab12"
        assert stores.catalog.get_stream("orphaned").recorder is None  # released at its end
        assert len(stores.catalog.segments(gone)) >= 1
