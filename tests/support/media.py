"""Media for tests and bench/: a generated test video (any length, with the committed
speech or a beeping tone), checks that a file plays and what boxes an MP4 holds, and a
free local port for servers that must come back on the same one."""

from __future__ import annotations

import socket
import struct
import subprocess
from pathlib import Path

from cli.demo_source import encode_picture_video


def make_test_video(
    ffmpeg: str, target: Path, seconds: float, fps: int = 25, audio: Path | None = None
) -> Path:
    """Test media: the demo's encoder (a moving test picture, a key frame every 2 s, the
    sound ``audio`` or a beeping tone), so tests record what a live room would send."""
    return encode_picture_video(ffmpeg, target, seconds, fps, audio)


def mp4_boxes(path: Path) -> list[str]:
    """The top-level box types of an MP4 file, in file order."""
    boxes, data, at = [], path.read_bytes(), 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size == 1:
            size = struct.unpack(">Q", data[at + 8 : at + 16])[0]
        elif size == 0:
            size = len(data) - at
        assert size >= 8, f"bad box at {at}"
        boxes.append(kind.decode("latin-1"))
        at += size
    return boxes


def assert_plays(ffmpeg: str, path: Path) -> None:
    result = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def free_port() -> int:
    """A port nothing listens on now (for a server that is stopped and started again on
    it, or for an address that must refuse connections)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
