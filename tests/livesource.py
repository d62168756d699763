"""A real live source for end-to-end tests: ffmpeg publishes a test video at native rate
(``-re``) as live HLS, served over HTTP on 127.0.0.1. It can be killed and restarted on
the same URL, as a streamer's connection would drop and come back."""

from __future__ import annotations

import functools
import shutil
import socket
import subprocess
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveHlsSource:
    def __init__(self, ffmpeg: str, video: Path, directory: Path, hls_seconds: int = 2) -> None:
        self.ffmpeg = ffmpeg
        self.video = video
        self.directory = directory
        self.hls_seconds = hls_seconds
        self.port = free_port()
        self.publisher: subprocess.Popen[bytes] | None = None
        self.server: ThreadingHTTPServer | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/live.m3u8"

    def start(self, wait: bool = True) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        handler = functools.partial(_QuietHandler, directory=str(self.directory))
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.publisher = subprocess.Popen(
            [self.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re"]
            + ["-stream_loop", "-1", "-i", str(self.video), "-c", "copy", "-f", "hls"]
            + ["-hls_time", str(self.hls_seconds), "-hls_list_size", "6"]
            + ["-hls_flags", "delete_segments+program_date_time+independent_segments"]
            + [str(self.directory / "live.m3u8")],
        )
        self.started_at = time.time()
        if wait:
            deadline = time.monotonic() + 20
            while not (self.directory / "live.m3u8").exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("the HLS publisher did not start")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.publisher is not None:
            self.publisher.kill()
            self.publisher.wait()
            self.publisher = None
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
