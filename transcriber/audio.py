"""Decode stored segments to 16 kHz mono float32 with ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from core.errors import SourceError
from transcriber.protocol import SAMPLE_RATE, Audio


def decode(ffmpeg: str, path: Path, start: float = 0.0, duration: float | None = None) -> Audio:
    """Audio of a media file, optionally from ``start`` seconds for ``duration`` seconds."""
    command = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error"]
    if start > 0:
        command += ["-ss", f"{start:.3f}"]
    command += ["-i", str(path)]
    if duration is not None:
        command += ["-t", f"{duration:.3f}"]
    command += ["-map", "0:a:0?", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-"]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        raise SourceError(f"cannot decode audio of {path.name}: {detail[-1] if detail else ''}")
    samples = np.frombuffer(result.stdout, dtype=np.int16)
    return (samples.astype(np.float32) / 32768.0).astype(np.float32)
