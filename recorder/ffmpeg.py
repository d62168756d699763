"""Run ffmpeg as a segmenting recorder and read what it reports.

ffmpeg copies the source's packets (no re-encode) into MPEG-TS files cut every
``segment_seconds`` at key frames. It appends ``name,start,end`` (media seconds) to a
CSV list as each segment closes, and writes ``-progress`` key=value blocks to stdout,
whose ``out_time`` against the wall clock anchors media time to UTC.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import NoMediaError, SourceError, SourceUnreachableError

SEGMENT_PATTERN = "seg%08d.ts"
NETWORK_SCHEMES = ("http://", "https://", "rtmp://", "rtmps://", "srt://", "rtsp://", "tcp://")
#: What ffmpeg may open for a source of each scheme (``-protocol_whitelist``, inherited
#: by every nested open: HLS segments and keys, RTSP's RTP): the scheme's protocol and
#: what it runs over, never file, concat, subfile, data, pipe, gopher, ftp or unix
#: (httpproxy: how ffmpeg tunnels https through an operator's ``http_proxy``).
SOURCE_PROTOCOLS = {
    "http": "http,https,httpproxy,tcp,tls,crypto",
    "https": "http,https,httpproxy,tcp,tls,crypto",
    "rtmp": "rtmp,rtmps,tcp,tls",
    "rtmps": "rtmp,rtmps,tcp,tls",
    "rtsp": "rtsp,rtp,srtp,udp,tcp,tls",
    "srt": "srt",
    "tcp": "tcp",
}
#: A local file (CLI, or the API with allow_file_sources) reads local files only.
FILE_PROTOCOLS = "file"
#: A followed HLS source: the local playlist copy, and http(s) segments and keys (each
#: URI checked by the egress policy before it is listed, recorder/hls.py).
FOLLOW_PROTOCOLS = "file,http,https,httpproxy,tcp,tls,crypto"
_PROTOCOL_PREFIX = re.compile(r"^([A-Za-z0-9+.-]+):")
PR_SET_PDEATHSIG = 1
NO_AUDIO_TAP = "Output file does not contain any stream"  # ffmpeg, of an empty output

_UNREACHABLE = re.compile(
    r"Connection refused|Connection timed out|No route to host|Name or service not known|"
    r"Failed to resolve|No such file or directory|Server returned [45]\d\d|Input/output error|"
    r"Network is unreachable|Operation timed out|Connection reset|End of file|Permission denied",
    re.IGNORECASE,
)
_LEVEL = re.compile(r"\[(trace|debug|verbose|info|warning|error|fatal|panic)\] ")
_QUIET_LEVELS = ("trace", "debug", "verbose", "info")
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_MEDIA_STREAM = re.compile(r"Stream #\d+:\d+.*: (Video|Audio):")
_NO_MEDIA = re.compile(
    r"Invalid data found when processing input|does not contain any stream|"
    r"could not find codec parameters|Output file .* does not contain any stream|"
    r"Stream map .* matches no streams",
    re.IGNORECASE,
)


def _die_with_parent() -> None:
    # ffmpeg must not outlive a recorder that was SIGKILLed (Linux only).
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True)
class ListedSegment:
    filename: str
    start: float
    end: float


def is_network_source(source: str) -> bool:
    return source.lower().startswith(NETWORK_SCHEMES)


def ffmpeg_protocol(source: str) -> str | None:
    """The protocol ffmpeg would open ``source`` with, as ffmpeg finds it (the letters,
    digits and ``+-.`` before the first ``:``, or ``subfile,...``); None for a path."""
    if source.startswith("subfile,"):
        return "subfile"
    found = _PROTOCOL_PREFIX.match(source)
    return found.group(1).lower() if found else None


def protocol_whitelist(source: str) -> str:
    """The protocols ffmpeg may use for ``source``: its scheme's (SOURCE_PROTOCOLS), or
    only ``file`` for a path; any other protocol (concat:, pipe:, ...) is then refused
    by ffmpeg itself."""
    protocol = ffmpeg_protocol(source)
    return SOURCE_PROTOCOLS.get(protocol or "file", FILE_PROTOCOLS)


def segmenter_command(
    ffmpeg: str,
    source: str,
    out_dir: Path,
    segment_seconds: float,
    realtime: bool,
    timeout_seconds: float,
    follow: Path | None = None,
    audio_fd: int | None = None,
) -> list[str]:
    """ffmpeg segmenting ``source``; with ``follow``, the local copy of an HLS source's
    playlist (recorder/hls.py) is read instead, from its first segment, and the log says
    (at info level, each line tagged with its level) which source segments were opened.
    With ``audio_fd``, the first audio track is also written to that pipe as 16 kHz mono
    s16le from media time 0 (gaps filled), for transcription as speech arrives
    (recorder/speech.py); a source without audio then fails with NO_AUDIO_TAP."""
    loglevel = "warning" if follow is None else "level+info"
    command = [ffmpeg, "-hide_banner", "-nostats", "-loglevel", loglevel]
    if is_network_source(source):
        command += ["-rw_timeout", str(int(timeout_seconds * 1_000_000))]
    whitelist = protocol_whitelist(source) if follow is None else FOLLOW_PROTOCOLS
    command += ["-protocol_whitelist", whitelist]
    if follow is not None:
        command += ["-live_start_index", "0"]
    if realtime:
        command += ["-re"]
    command += [
        "-i",
        source if follow is None else str(follow),
        "-map",
        "0:v?",
        "-map",
        "0:a?",
        "-c",
        "copy",
        "-f",
        "segment",
        "-segment_format",
        "mpegts",
        "-segment_time",
        f"{segment_seconds:g}",
        "-segment_list",
        str(out_dir / "segments.csv"),
        "-segment_list_type",
        "csv",
        "-progress",
        "pipe:1",
        "-stats_period",
        "0.5",
        str(out_dir / SEGMENT_PATTERN),
    ]
    if audio_fd is not None:
        command += [
            "-map", "0:a:0?", "-vn", "-ac", "1", "-ar", "16000",
            "-af", "aresample=async=1:first_pts=0", "-f", "s16le", f"pipe:{audio_fd}",
        ]  # fmt: skip
    return command


def lacks_audio_for_tap(stderr_lines: list[str]) -> bool:
    """Whether ffmpeg refused to start because the PCM tap found no audio track."""
    return any(NO_AUDIO_TAP in line for line in stderr_lines[-6:])


class FfmpegProcess:
    """One ffmpeg run with its progress and stderr read by background threads."""

    def __init__(
        self,
        command: list[str],
        on_progress: Callable[[float], None],
        on_log: Callable[[str], None] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.command = command
        self._on_progress = on_progress
        self._on_log = on_log
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
            pass_fds=pass_fds,
        )
        self._readers = [
            threading.Thread(target=self._read_progress, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_progress(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            key, _, value = line.decode(errors="replace").strip().partition("=")
            if key == "out_time_us" and value.lstrip("-").isdigit():
                self._on_progress(int(value) / 1_000_000)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            text = line.decode(errors="replace").strip()
            if not text:
                continue
            tagged = _LEVEL.search(text)
            if tagged is not None:  # -loglevel level+...: informative lines are not errors
                text = text[: tagged.start()] + text[tagged.end() :]
                if self._on_log is not None:
                    self._on_log(text)
                if tagged.group(1) in _QUIET_LEVELS:
                    continue
            self.stderr_tail.append(text)

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def stop(self, grace_seconds: float = 5.0) -> int:
        """Ask ffmpeg to finish the open segment and exit; kill it if it does not."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(b"q")
                self.process.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.process.wait(grace_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.wait()

    def kill(self) -> int:
        if self.process.poll() is None:
            self.process.kill()
        return self.wait()

    def wait(self) -> int:
        code = self.process.wait()
        for reader in self._readers:
            reader.join(timeout=2)
        return code

    def error_line(self) -> str:
        lines = [line for line in self.stderr_tail if not line.startswith("Press [q]")]
        return lines[-1] if lines else f"ffmpeg exited with code {self.process.returncode}"


def classify_failure(source: str, stderr_lines: list[str]) -> SourceError:
    """Turn ffmpeg's last words about an input into one readable error."""
    text = "\n".join(stderr_lines)
    last = stderr_lines[-1] if stderr_lines else "ffmpeg could not read it"
    detail = last.split(": ", 1)[-1] if ": " in last else last
    if _NO_MEDIA.search(text):
        return NoMediaError(f"{source} carries no audio or video ({detail})")
    if _UNREACHABLE.search(text) or is_network_source(source):
        return SourceUnreachableError(f"cannot open {source} ({detail})")
    return SourceError(f"cannot record {source} ({detail})")


def read_segment_list(path: Path) -> list[ListedSegment]:
    """Closed segments ffmpeg has listed so far; a half-written last line is ignored."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    listed = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        parts = line.strip().split(",")
        if len(parts) != 3:
            continue
        try:
            listed.append(ListedSegment(parts[0], float(parts[1]), float(parts[2])))
        except ValueError:
            continue
    return listed


def probe_duration(ffmpeg: str, path: Path, timeout: float = 60.0) -> float:
    """Seconds of media that decode from a (possibly truncated) file; 0.0 when none."""
    try:
        result = subprocess.run(
            [
                ffmpeg,
                "-hide_banner",
                "-nostdin",
                "-v",
                "error",
                "-i",
                str(path),
                "-map",
                "0:v?",
                "-map",
                "0:a?",
                "-f",
                "null",
                "-progress",
                "pipe:1",
                "-",
            ],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 0.0
    seconds = 0.0
    for line in result.stdout.decode(errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key == "out_time_us" and value.lstrip("-").isdigit():
            seconds = max(seconds, int(value) / 1_000_000)
    return seconds


@dataclass(frozen=True)
class FileProbe:
    duration: float | None  # as the container says; None when it does not
    has_media: bool
    stderr_lines: list[str]


def probe_file(ffmpeg: str, path: Path, timeout: float = 30.0) -> FileProbe:
    """What a local file's header says (no decoding): its duration and whether it holds
    audio or video."""
    try:
        result = subprocess.run(
            [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return FileProbe(None, False, [f"ffmpeg could not read it within {timeout:.0f}s"])
    text = result.stderr.decode(errors="replace")
    found = _DURATION.search(text)
    duration = None
    if found is not None:
        hours, minutes, seconds = found.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if "At least one output file" not in line]
    return FileProbe(duration, bool(_MEDIA_STREAM.search(text)), lines)
