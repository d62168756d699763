"""Frames sampled from a stored segment with ffmpeg: one every N seconds and one at each
scene change, as JPEGs with their time in the segment.

Only key frames are decoded by default (``-skip_frame nokey``): decoding every frame of a
720p stream to find scene changes would cost more CPU than reading the text. Samples then
fall on key frames (live streams send one every 1-4 s), and a scene change is seen at
the first key frame after it.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from core.errors import SourceError

MAX_WIDTH = 1280  # larger frames are scaled down: OCR and storage cost grow with pixels
JPEG_QUALITY = 4  # ffmpeg's -q:v for MJPEG (2 best .. 31): text edges stay sharp
_PTS = re.compile(r"\bn:\s*\d+\s+pts:\s*-?\d+\s+pts_time:\s*(-?[0-9.]+)")
_SOI = b"\xff\xd8"


@dataclass(frozen=True)
class Frame:
    pts: float  # seconds into the segment
    jpeg: bytes


def sample_frames(
    ffmpeg: str,
    path: Path,
    every_seconds: float,
    scene_threshold: float,
    key_frames_only: bool = True,
) -> list[Frame]:
    """The segment's sampled frames in time order (the first frame always)."""
    choose = f"isnan(prev_selected_t)+gte(t-prev_selected_t\\,{every_seconds:g})"
    if scene_threshold > 0:
        choose += f"+gt(scene\\,{scene_threshold:g})"
    command = [ffmpeg, "-hide_banner", "-nostdin", "-v", "info"]
    if key_frames_only:
        command += ["-skip_frame", "nokey"]
    command += ["-i", str(path), "-map", "0:v:0", "-an"]
    command += ["-vf", f"select='{choose}',scale='min({MAX_WIDTH},iw)':-2,showinfo"]
    command += ["-fps_mode", "vfr", "-f", "image2pipe", "-c:v", "mjpeg"]
    command += ["-q:v", str(JPEG_QUALITY), "-"]
    result = subprocess.run(command, capture_output=True, check=False)
    stderr = result.stderr.decode(errors="replace")
    if result.returncode != 0:
        lines = [line for line in stderr.splitlines() if line.strip()]
        raise SourceError(f"cannot sample frames of {path.name}: {lines[-1] if lines else ''}")
    times = [max(0.0, float(found)) for found in _PTS.findall(stderr)]
    images = split_jpegs(result.stdout)
    if len(images) != len(times):
        raise SourceError(
            f"cannot sample frames of {path.name}: {len(images)} images for {len(times)} times"
        )
    return [Frame(pts=pts, jpeg=jpeg) for pts, jpeg in zip(times, images, strict=True)]


def split_jpegs(stream: bytes) -> list[bytes]:
    """ffmpeg's MJPEG pipe cut into its JPEGs: the header segments are walked by their
    lengths (tables may hold any byte), the coded data up to its end-of-image marker
    (0xFF is stuffed with 0x00 there; 0xFFD0-D7 are restart markers)."""
    images, at = [], 0
    while at < len(stream):
        end = _jpeg_end(stream, at)
        images.append(stream[at:end])
        at = end
    return images


def _jpeg_end(data: bytes, at: int) -> int:
    if not data.startswith(_SOI, at):
        raise SourceError("ffmpeg's frame pipe is not a run of JPEGs")
    pos = at + 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise SourceError("ffmpeg's frame pipe holds a malformed JPEG")
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += 2 + length
        if marker == 0xDA:  # start of scan: coded data follows
            while True:
                pos = data.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= len(data):
                    raise SourceError("ffmpeg's frame pipe ends inside a JPEG")
                following = data[pos + 1]
                if following == 0xD9:
                    return pos + 2
                pos += 2 if following == 0x00 or 0xD0 <= following <= 0xD7 else 0
                if following not in (0x00, *range(0xD0, 0xD8)):
                    break  # another marker (a second scan): walk it as a segment
    raise SourceError("ffmpeg's frame pipe ends inside a JPEG")
