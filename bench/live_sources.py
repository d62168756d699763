"""Live HTTP-FLV sources for the live benchmarks (bench/live_pipeline.py), and the loop
period their publisher plays at.

`LiveFlvSource` is ffmpeg publishing a video at native rate (``-re``, looped) as HTTP-FLV
from its own one-client HTTP server (``-f flv -listen 1``), as a streaming platform's
FLV edge serves a room: the recorder's ffmpeg reads it directly (no playlist, no reload).
Its ``-re`` clock starts when the client connects (measured: a reader that connected 4 s
after the publisher started got 2.2 s of media in its first 1.6 s, then native rate), so
the publisher can be started before the recorder is pointed at it.

With ``scheme="rtmp"`` the same publisher serves RTMP instead (``-f flv -listen 1
rtmp://127.0.0.1:PORT/live/room``: ffmpeg's own one-client RTMP server), as an RTMP pull
address of a room is read.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from pathlib import Path

from tests.support.media import free_port


class LiveFlvSource:
    """ffmpeg -re -stream_loop -1 -i VIDEO -c copy -f flv -listen 1 http://127.0.0.1:PORT/live.flv
    (one client: a recorder that reconnects finds the source ended)."""

    def __init__(self, ffmpeg: str, video: Path, scheme: str = "http") -> None:
        self.ffmpeg = ffmpeg
        self.video = video
        self.scheme = scheme
        self.port = free_port()
        self.publisher: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        if self.scheme == "rtmp":
            return f"rtmp://127.0.0.1:{self.port}/live/room"
        return f"http://127.0.0.1:{self.port}/live.flv"

    def start(self) -> None:
        self.publisher = subprocess.Popen(
            [self.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re"]
            + ["-stream_loop", "-1", "-i", str(self.video), "-c", "copy"]
            + ["-f", "flv", "-listen", "1", self.url]
        )
        self.started_at = time.time()
        time.sleep(0.3)  # listening before a client is pointed at it

    def stop(self) -> None:
        if self.publisher is not None:
            self.publisher.kill()
            self.publisher.wait()
            self.publisher = None


def flv_loop_period(ffmpeg: str, video: Path, cache: Path) -> float:
    """Media seconds the looping publisher advances per loop (``-stream_loop`` adds the
    longest stream's length, 68.064 s for the 68 s program, as the HLS publisher's longer
    segment at each wrap shows): the first picture of the second loop minus the first of
    the first, in an FLV of two loops muxed as the publisher muxes them."""
    two = cache / f"{video.stem}-2loops.flv"
    if not two.exists():
        subprocess.run(
            [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-stream_loop", "1"]
            + ["-i", str(video), "-c", "copy", "-f", "flv", str(two)],
            check=True,
        )
    frames = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(two)]
        + ["-map", "0:v", "-c", "copy", "-f", "framecrc", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pts = [int(line.split(",")[1]) / 1000 for line in frames.splitlines() if line[:1].isdigit()]
    step = pts[1] - pts[0]
    for before, after in itertools.pairwise(pts):
        if after - before > 1.5 * step:  # the wrap: the picture track is shorter than audio
            return round(after - pts[0], 3)
    raise RuntimeError(f"no loop wrap found in {two}")
