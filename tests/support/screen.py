"""A test video with text burnt in, as a live room shows it: a banner (假一赔十) all the
way, and from ``STICKER_FROM`` a price sticker (￥99) over a new scene (a product
switch). The CJK font is WenQuanYi Micro Hei from the ``paperang-p2-fonts-cjk`` wheel."""

from __future__ import annotations

import subprocess
from pathlib import Path

BANNER = "假一赔十"
PRICE = "￥99"  # full width, as overlays print it (search folds it to ¥99)
STICKER_FROM = 7.0  # seconds into the video


def cjk_font() -> Path:
    import paperang_p2_fonts_cjk

    return Path(paperang_p2_fonts_cjk.__file__).parent / "fonts" / "wqy-microhei.ttc"


def make_screen_video(ffmpeg: str, target: Path, seconds: float = 15.0, fps: int = 25) -> Path:
    """H.264/AAC MP4, 640x360, a key frame every 2 s (where a live publisher cuts)."""
    font = cjk_font()
    shown = f"between(t\\,{STICKER_FROM:g}\\,{seconds:g})"
    video = ",".join(
        [
            # The product switch: another background from the sticker on (a scene change).
            f"drawbox=x=0:y=0:w=iw:h=ih:color=0x806040:t=fill:enable='{shown}'",
            f"drawtext=fontfile={font}:text='{BANNER}':fontsize=40:fontcolor=white"
            ":box=1:boxcolor=red:boxborderw=8:x=40:y=290",
            f"drawtext=fontfile={font}:text='{PRICE}':fontsize=56:fontcolor=black"
            f":box=1:boxcolor=yellow:boxborderw=8:x=460:y=60:enable='{shown}'",
        ]
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    key_frames = str(2 * fps)
    subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        + ["-f", "lavfi", "-i", f"color=c=0x304050:size=640x360:rate={fps}"]
        + ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000"]
        + ["-t", f"{seconds:g}", "-vf", video, "-map", "0:v", "-map", "1:a"]
        + ["-c:v", "libx264", "-preset", "veryfast", "-g", key_frames]
        + ["-keyint_min", key_frames, "-sc_threshold", "0", "-pix_fmt", "yuv420p"]
        + ["-c:a", "aac", "-b:a", "32k", str(target)],
        check=True,
        capture_output=True,
    )
    return target
