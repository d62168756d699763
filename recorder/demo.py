"""Generated stand-ins for a live source, so the demo and tests need nothing but ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

from storage.errors import ConfigError
from storage.settings import Settings


def make_test_video(
    ffmpeg: str, target: Path, seconds: float, fps: int = 25, audio: Path | None = None
) -> Path:
    """An H.264/AAC MP4 with a moving test picture and a key frame every 2 s; its sound is
    ``audio`` (padded with silence to ``seconds``) or a beeping tone."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.mp4")
    sound = (
        ["-i", str(audio), "-af", "apad"]
        if audio is not None
        else ["-f", "lavfi", "-i", "sine=frequency=440:beep_factor=4:sample_rate=16000"]
    )
    result = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        + ["-f", "lavfi", "-i", f"testsrc2=size=426x240:rate={fps}", *sound]
        + ["-map", "0:v", "-map", "1:a", "-t", f"{seconds:g}"]
        + ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency"]
        + ["-g", str(2 * fps), "-keyint_min", str(2 * fps), "-sc_threshold", "0"]
        + ["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart"]
        + [str(tmp)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise ConfigError(f"ffmpeg could not make a test video: {result.stderr.decode()[-300:]}")
    tmp.replace(target)
    return target


SPEECH = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "speech"
DEMO_CLIPS = ("sales_1.flac", "sales_2.flac")
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
        return make_test_video(settings.ffmpeg, target, seconds=60)
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
        return make_test_video(settings.ffmpeg, target, seconds=60, audio=joined)
    finally:
        joined.unlink()
