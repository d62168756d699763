"""On-screen text (OCR): seconds per frame, and CPU per stream at the default sampling.

    .venv/bin/python bench/ocr_cpu.py --seconds 60 --size 1280x720

A live-like video (a moving test picture, key frame every 2 s, a 假一赔十 banner all the
way and a ￥99 sticker from 7 s, tests/support/screen.py's font) is ingested as 10 s
segments; one OCR worker then reads every segment as ``livewitness ocr`` does (sampling,
JPEG keyframes, RapidOCR, chaining, catalog). Measured: this process's CPU time (all
threads: onnxruntime's too) plus its ffmpeg children's, per second of media. CPU per
stream is that share of one core: what OCR costs a live stream sampled at the settings.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.settings import Settings
from recorder.recorder import StreamRecorder
from storage.stores import open_stores
from tests.support.screen import BANNER, PRICE, STICKER_FROM, cjk_font
from transcriber.ocr.pool import open_reader
from transcriber.ocr.worker import OcrWorker


def make_video(ffmpeg: str, target: Path, seconds: float, size: str) -> Path:
    font = cjk_font()
    shown = f"between(t\\,{STICKER_FROM:g}\\,{seconds:g})"
    video = (
        f"drawtext=fontfile={font}:text='{BANNER}':fontsize=h/14:fontcolor=white:box=1"
        ":boxcolor=red:boxborderw=8:x=w/16:y=h*0.8,"
        f"drawtext=fontfile={font}:text='{PRICE}':fontsize=h/10:fontcolor=black:box=1"
        f":boxcolor=yellow:boxborderw=8:x=w*0.7:y=h/8:enable='{shown}'"
    )
    subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        + ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25"]
        + ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000"]
        + ["-t", f"{seconds:g}", "-vf", video, "-map", "0:v", "-map", "1:a"]
        + ["-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50"]
        + ["-sc_threshold", "0", "-b:v", "2500k", "-pix_fmt", "yuv420p"]
        + ["-c:a", "aac", "-b:a", "64k", str(target)],
        check=True,
    )
    return target


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--every", type=float, default=None, help="ocr_every_seconds")
    args = parser.parse_args()
    options = {} if args.every is None else {"ocr_every_seconds": args.every}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        stores = open_stores(Settings(home=home, **options))
        video = make_video(stores.settings.ffmpeg, Path(tmp) / "live.mp4", args.seconds, args.size)
        started = datetime.now(UTC) - timedelta(seconds=args.seconds + 60)
        StreamRecorder(
            stores.settings,
            stores.chain,
            "bench",
            str(video),
            segment_seconds=10,
            started_at=started,
        ).run()
        reader = open_reader(stores)
        reader.read(_warm_frame(video))  # models loaded before the clock starts
        worker = OcrWorker(stores, reader)
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        frames = keyframes = lines = 0
        media = 0.0
        while (result := worker.run_once()) is not None:
            frames += result.frames
            keyframes += result.keyframes
            lines += result.lines
            media += result.media_seconds
        cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
        row = stores.catalog.get_stream("bench")
        found = [line.text for line in stores.catalog.screen_text(row.id, "bench")]
        stored = sum(kf.size for kf in stores.catalog.keyframes(row.id))
        stores.close()
    print(
        json.dumps(
            {
                "size": args.size,
                "media_seconds": round(media, 1),
                "every_seconds": Settings(**options).ocr_every_seconds,
                "frames": frames,
                "keyframes": keyframes,
                "keyframe_bytes_per_minute": round(stored / media * 60),
                "lines": lines,
                "texts": sorted(set(found)),
                "wall_seconds": round(wall, 2),
                "cpu_seconds": round(cpu, 2),
                "cpu_seconds_per_frame": round(cpu / max(frames, 1), 3),
                "wall_seconds_per_frame": round(wall / max(frames, 1), 3),
                "cpu_per_stream_percent_of_one_core": round(100 * cpu / media, 1),
            },
            ensure_ascii=False,
        )
    )


def _warm_frame(video: Path) -> bytes:
    """One JPEG of the video: the engine loads its models before the clock starts."""
    settings = Settings()
    return subprocess.run(
        [settings.ffmpeg, "-v", "error", "-i", str(video), "-frames:v", "1", "-f", "image2pipe"]
        + ["-c:v", "mjpeg", "-"],
        capture_output=True,
        check=True,
    ).stdout


if __name__ == "__main__":
    main()
