"""Generated stand-ins for a live source, so the demo needs nothing but ffmpeg: a video of
the committed Mandarin sales talk, and a live HLS publisher for it (which the tests and
bench/ use as their live source too)."""

from __future__ import annotations

import functools
import shutil
import subprocess
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.settings import Settings

SPEECH = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "speech"
DEMO_CLIPS = ("sales_1.flac", "sales_2.flac")
DEMO_SECONDS = 60
DEMO_FPS = 25
DEMO_PRODUCTS = [
    {"name": "羽绒服", "sku": "YR-001", "price": 99},
    {"name": "手镯", "aliases": ["纯银手镯"], "sku": "SZ-002", "price": 129},
    {"name": "面霜", "sku": "MS-003"},
    {"name": "保温杯", "sku": "BW-004"},
]


def make_demo_source(settings: Settings, target: Path) -> Path:
    """A video with Mandarin sales talk (the committed speech fixtures, one after another)."""
    if target.exists():
        return target
    clips = [SPEECH / name for name in DEMO_CLIPS]
    if not all(c.exists() for c in clips):
        return encode_picture_video(settings.ffmpeg, target, DEMO_SECONDS, DEMO_FPS)
    target.parent.mkdir(parents=True, exist_ok=True)
    joined = target.with_suffix(".wav")
    inputs = [arg for c in clips for arg in ("-i", str(c))]
    result = subprocess.run(
        [settings.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *inputs]
        + ["-filter_complex", f"concat=n={len(clips)}:v=0:a=1", str(joined)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise ConfigError(f"ffmpeg could not join the demo speech: {result.stderr.decode()[-300:]}")
    try:
        return encode_picture_video(settings.ffmpeg, target, DEMO_SECONDS, DEMO_FPS, joined)
    finally:
        joined.unlink()


def encode_picture_video(
    ffmpeg: str, target: Path, seconds: float, fps: int = 25, audio: Path | None = None
) -> Path:
    """An H.264/AAC MP4 of ``seconds``: a moving test picture with a key frame every 2 s
    (where an HLS publisher cuts), its sound ``audio`` padded with silence, or a beeping
    tone when there is none (the demo without its speech fixtures)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.mp4")
    sound = (
        ["-i", str(audio), "-af", "apad"]
        if audio is not None
        else ["-f", "lavfi", "-i", "sine=frequency=440:beep_factor=4:sample_rate=16000"]
    )
    key_frames = str(2 * fps)
    result = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        + ["-f", "lavfi", "-i", f"testsrc2=size=426x240:rate={fps}", *sound]
        + ["-map", "0:v", "-map", "1:a", "-t", f"{seconds:g}"]
        + ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency"]
        + ["-g", key_frames, "-keyint_min", key_frames, "-sc_threshold", "0"]
        + ["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart"]
        + [str(tmp)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise ConfigError(f"ffmpeg could not make a video: {result.stderr.decode()[-300:]}")
    tmp.replace(target)
    return target


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class LiveHlsSource:
    """ffmpeg publishes a video at native rate (``-re``, looped) as live HLS, served over
    HTTP on 127.0.0.1. It can be killed and restarted on the same URL, as a streamer's
    connection would drop and come back.

    The port is the OS's pick, taken when the source is made (bound, refusing connections
    until ``start``), so ``port`` and ``url`` hold from the start; a restart binds it
    again."""

    def __init__(self, ffmpeg: str, video: Path, directory: Path, hls_seconds: int = 2) -> None:
        self.ffmpeg = ffmpeg
        self.video = video
        self.directory = directory
        self.hls_seconds = hls_seconds
        self.publisher: subprocess.Popen[bytes] | None = None
        self.server: ThreadingHTTPServer | None = None
        self.started_at = 0.0
        self._bound: ThreadingHTTPServer | None = self._bind(0)
        self.port = int(self._bound.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/live.m3u8"

    def _bind(self, port: int) -> ThreadingHTTPServer:
        """A server bound to ``port`` (0: any free one) that does not listen yet."""
        handler = functools.partial(_QuietHandler, directory=str(self.directory))
        server = ThreadingHTTPServer(("127.0.0.1", port), handler, bind_and_activate=False)
        try:
            server.server_bind()
        except BaseException:
            server.server_close()
            raise
        return server

    def start(self, wait: bool = True) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        server = self._bound or self._bind(self.port)
        self._bound = None
        server.server_activate()
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
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
                    raise ConfigError("the demo HLS publisher did not start")
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
        if self._bound is not None:  # made but never started
            self._bound.server_close()
            self._bound = None
