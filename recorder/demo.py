"""A generated stand-in for a live source, so the demo needs nothing but ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

from storage.errors import ConfigError
from storage.settings import Settings


def make_test_video(ffmpeg: str, target: Path, seconds: float, fps: int = 25) -> Path:
    """An H.264/AAC MP4 with a moving test picture, a tone and a key frame every 2 s."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.mp4")
    result = subprocess.run(
        [
            ffmpeg,
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=426x240:rate={fps}",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:beep_factor=4:sample_rate=16000",
            "-t",
            f"{seconds:g}",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            str(2 * fps),
            "-keyint_min",
            str(2 * fps),
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "48k",
            "-movflags",
            "+faststart",
            str(tmp),
        ],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise ConfigError(f"ffmpeg could not make a test video: {result.stderr.decode()[-300:]}")
    tmp.replace(target)
    return target


def make_demo_source(settings: Settings, target: Path) -> Path:
    if target.exists():
        return target
    return make_test_video(settings.ffmpeg, target, seconds=120)
