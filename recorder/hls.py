"""Follow a live HLS source by its own continuity.

The recorder reads the playlist itself (a small HTTP GET of the URL it records) to learn
which media sequence numbers the source holds, whether it has ended (``#EXT-X-ENDLIST``)
and whether it is a recording rather than a live source (``#EXT-X-PLAYLIST-TYPE:VOD``).
ffmpeg then reads a local copy of the playlist (``source.m3u8`` in the session directory)
that lists only the segments this stream has not chained yet, so a segment the source
lists again (a playlist that ended keeps its last segments) is never read twice, and the
recorder knows exactly which source segments each ffmpeg run covered. Which sequence
numbers were fed and which ffmpeg opened are logged beside it (``fed.txt``,
``opened.txt``), so a session left behind by a crash can still be placed.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse, urlsplit

import httpx
import m3u8

from core.egress import EgressPolicy, check_url_text
from core.egress_http import egress_client, refusal_in
from core.errors import (
    EgressRefusedError,
    NoMediaError,
    SourceError,
    SourceUnreachableError,
)
from core.redact import redact_source, redact_text

log = logging.getLogger(__name__)

LOCAL_PLAYLIST = "source.m3u8"
FED_LOG = "fed.txt"
OPENED_LOG = "opened.txt"
LIVE_EDGE_SEGMENTS = 3  # a new recording joins this far from the live edge, as ffmpeg does
MAX_PLAYLIST_BYTES = 4 * 1024 * 1024
BOUNDARY_SLACK_SECONDS = 0.1  # packet starts differ from EXTINF sums by a frame or two
MAX_REDIRECTS = 5  # each hop is checked by the egress policy

_OPENING = re.compile(r"Opening '(.+)' for reading")
_FAILED = re.compile(r"Failed to open segment (\d+) of playlist")


@dataclass(frozen=True)
class HlsSegment:
    seq: int
    uri: str  # absolute
    duration: float
    program_date_time: datetime | None = None
    discontinuity: bool = False
    key_line: str | None = None  # #EXT-X-KEY in force, its URI made absolute
    map_line: str | None = None  # #EXT-X-MAP in force, its URI made absolute
    byterange: str | None = None


@dataclass(frozen=True)
class MediaPlaylist:
    url: str  # where it was read (after redirects and the choice of a variant)
    version: int
    target_duration: float
    segments: tuple[HlsSegment, ...]
    ended: bool  # #EXT-X-ENDLIST: the source will add nothing more
    vod: bool  # #EXT-X-PLAYLIST-TYPE:VOD: a recording, not a live source

    @property
    def last_seq(self) -> int | None:
        return self.segments[-1].seq if self.segments else None


def is_hls_url(source: str) -> bool:
    parsed = urlparse(source)
    return parsed.scheme in ("http", "https") and parsed.path.lower().endswith(".m3u8")


def read_playlist(url: str, timeout: float, policy: EgressPolicy) -> MediaPlaylist:
    """The media playlist at ``url``; of a master playlist, its highest-bandwidth
    variant's. Every request, redirect and listed segment, key or map URI must pass the
    egress ``policy`` (EgressRefusedError): ffmpeg fetches what the playlist lists."""
    with egress_client(policy, timeout=timeout, what="source") as client:
        final_url, text = _get(client, url)
        parsed = _parse(text, final_url, url)
        if parsed.is_variant:
            if not parsed.playlists:
                raise NoMediaError(
                    f"{url} carries no audio or video (a master playlist without variants)"
                )
            best = max(parsed.playlists, key=lambda p: p.stream_info.bandwidth or 0)
            final_url, text = _get(client, best.absolute_uri)
            parsed = _parse(text, final_url, url)
            if parsed.is_variant:
                raise NoMediaError(f"{url} carries no audio or video (nested master playlists)")
    _check_media_uris(parsed, policy)
    return _media_playlist(parsed, final_url)


def _get(client: httpx.Client, url: str) -> tuple[str, str]:
    """GET a playlist, following redirects by hand so that each hop is checked."""
    asked = url
    for _hop in range(MAX_REDIRECTS + 1):
        if urlparse(url).scheme not in ("http", "https"):
            raise SourceUnreachableError(f"cannot open {asked} (not an http(s) URL: {url})")
        body = bytearray()
        try:
            with client.stream("GET", url, headers={"User-Agent": "LiveWitness"}) as response:
                if response.is_redirect and "location" in response.headers:
                    url = str(response.url.join(response.headers["location"]))
                    continue
                if response.status_code >= 400:
                    raise SourceUnreachableError(
                        f"cannot open {asked} (Server returned {response.status_code}"
                        f" {response.reason_phrase})"
                    )
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_PLAYLIST_BYTES:
                        break
                final = str(response.url)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            refused = refusal_in(exc)
            if refused is not None:
                raise EgressRefusedError(str(refused)) from None
            detail = str(exc) or type(exc).__name__
            raise SourceUnreachableError(f"cannot open {asked} ({detail})") from None
        if len(body) > MAX_PLAYLIST_BYTES:
            raise NoMediaError(f"{asked} carries no audio or video (a playlist over 4 MiB)")
        return final, body.decode("utf-8", errors="replace")
    raise SourceUnreachableError(f"cannot open {asked} (more than {MAX_REDIRECTS} redirects)")


def _check_media_uris(parsed: m3u8.M3U8, policy: EgressPolicy) -> None:
    """Refuse a playlist that lists a segment, key or map ffmpeg must not open: any
    scheme but http(s), or a host the egress policy refuses."""
    seen: set[tuple[str, str]] = set()
    for segment in parsed.segments:
        uris = [str(segment.absolute_uri)]
        if segment.key is not None and segment.key.uri:
            uris.append(str(segment.key.absolute_uri))
        if segment.init_section is not None and segment.init_section.uri:
            uris.append(str(segment.init_section.absolute_uri))
        for uri in uris:
            parts = urlsplit(uri)
            origin = (parts.scheme.lower(), parts.netloc.lower())
            if origin in seen:
                check_url_text(uri, "playlist segment")
                continue
            policy.check_url(uri, what="playlist segment", unresolvable=SourceUnreachableError)
            seen.add(origin)


def _parse(text: str, final_url: str, asked: str) -> m3u8.M3U8:
    if not text.lstrip("\ufeff").startswith("#EXTM3U"):
        raise NoMediaError(f"{asked} carries no audio or video (not an HLS playlist)")
    try:
        return m3u8.loads(text, uri=final_url)
    except Exception as exc:  # the parser raises many kinds on broken input
        raise NoMediaError(
            f"{asked} carries no audio or video (a broken playlist: {exc})"
        ) from None


def _media_playlist(parsed: m3u8.M3U8, url: str) -> MediaPlaylist:
    first = int(parsed.media_sequence or 0)
    segments = []
    for number, segment in enumerate(parsed.segments):
        moment = segment.program_date_time
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        segments.append(
            HlsSegment(
                seq=first + number,
                uri=str(segment.absolute_uri),
                duration=float(segment.duration or 0.0),
                program_date_time=moment,
                discontinuity=bool(segment.discontinuity),
                key_line=_key_line(segment.key),
                map_line=_map_line(segment.init_section),
                byterange=segment.byterange or None,
            )
        )
    durations = [s.duration for s in segments]
    return MediaPlaylist(
        url=url,
        version=int(parsed.version or 3),
        target_duration=float(parsed.target_duration or max(durations, default=10.0)),
        segments=tuple(segments),
        ended=bool(parsed.is_endlist),
        vod=str(parsed.playlist_type or "").lower() == "vod",
    )


def _key_line(key: m3u8.Key | None) -> str | None:
    if key is None or not key.method or key.method.upper() == "NONE":
        return None
    attributes = [f"METHOD={key.method}"]
    if key.uri:
        attributes.append(f'URI="{key.absolute_uri}"')
    if key.iv:
        attributes.append(f"IV={key.iv}")
    if key.keyformat:
        attributes.append(f'KEYFORMAT="{key.keyformat}"')
    if key.keyformatversions:
        attributes.append(f'KEYFORMATVERSIONS="{key.keyformatversions}"')
    return "#EXT-X-KEY:" + ",".join(attributes)


def _map_line(section: m3u8.model.InitializationSection | None) -> str | None:
    if section is None or not section.uri:
        return None
    line = f'#EXT-X-MAP:URI="{section.absolute_uri}"'
    return line + (f',BYTERANGE="{section.byterange}"' if section.byterange else "")


def select_feed(playlist: MediaPlaylist, last_seq: int | None) -> list[HlsSegment]:
    """The segments of ``playlist`` not chained yet: those after ``last_seq`` (the last
    media sequence number the stream chained); for a new recording, or a live source
    that started its numbering over (a publisher restart), the last few, as a player
    joins."""
    segments = list(playlist.segments)
    if last_seq is None or (not playlist.ended and started_over(playlist, last_seq)):
        return segments[-LIVE_EDGE_SEGMENTS:]
    return [s for s in segments if s.seq > last_seq]


def started_over(playlist: MediaPlaylist, last_seq: int) -> bool:
    """Whether a live playlist numbers its media anew: it ends more than a whole window
    below what was chained (a stale cache lags by a segment or two, not a window)."""
    last = playlist.last_seq
    return last is not None and last < last_seq - len(playlist.segments)


def media_sequence_of(
    fed: Sequence[tuple[int, float]], start: float, end: float, last_opened: int | None
) -> tuple[int, int] | None:
    """The first and last source segments an output span [start, end] (media seconds
    from the first fed segment) draws from, by the fed segments' EXTINF durations; the
    last is at most the last segment ffmpeg opened."""
    if not fed:
        return None
    boundaries, at = [], 0.0
    for seq, duration in fed:
        boundaries.append((seq, at, at + duration))
        at += duration

    def containing(moment: float) -> int:
        for seq, begins, ends in boundaries:
            if begins <= moment < ends:
                return seq
        return boundaries[-1][0] if moment >= 0 else boundaries[0][0]

    first = containing(start + BOUNDARY_SLACK_SECONDS)
    last = containing(max(start, end - BOUNDARY_SLACK_SECONDS))
    if last_opened is not None:
        last = min(last, last_opened)
    return first, max(first, last)


def local_playlist(
    segments: Sequence[HlsSegment], version: int, target_duration: float, ended: bool
) -> str:
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{version}",
        f"#EXT-X-TARGETDURATION:{max(1, math.ceil(target_duration))}",
        f"#EXT-X-MEDIA-SEQUENCE:{segments[0].seq if segments else 0}",
    ]
    key: str | None = None
    init: str | None = None
    for segment in segments:
        if segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.key_line != key:
            lines.append(segment.key_line or "#EXT-X-KEY:METHOD=NONE")
            key = segment.key_line
        if segment.map_line is not None and segment.map_line != init:
            lines.append(segment.map_line)
            init = segment.map_line
        if segment.byterange:
            lines.append(f"#EXT-X-BYTERANGE:{segment.byterange}")
        lines += [f"#EXTINF:{segment.duration:.6f},", segment.uri]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def read_fed_log(directory: Path) -> list[tuple[int, float]]:
    """The segments a session fed ffmpeg, in order (a half-written last line ignored)."""
    fed = []
    for line in _complete_lines(directory / FED_LOG):
        seq, _, duration = line.partition(" ")
        try:
            fed.append((int(seq), float(duration)))
        except ValueError:
            continue
    return fed


def read_opened_log(directory: Path) -> int | None:
    """The last source segment ffmpeg opened in a session, if it opened any."""
    opened = [int(line) for line in _complete_lines(directory / OPENED_LOG) if line.isdigit()]
    return max(opened, default=None)


def _complete_lines(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    return [line.strip() for line in lines[:-1]]  # the last piece has no newline yet


class HlsFollower:
    """Keeps a session's local playlist in step with the source for one ffmpeg run.

    A thread re-reads the source playlist and appends what is new. It stops feeding, and
    closes the local playlist with ``#EXT-X-ENDLIST`` so that ffmpeg finishes what it was
    given and exits, when the source ends (``source_ended``), when the source cannot be
    read or adds nothing for too long (``problem``), or when the recorder asks
    (:meth:`close`)."""

    def __init__(
        self,
        url: str,
        playlist: MediaPlaylist,
        feed: Sequence[HlsSegment],
        directory: Path,
        *,
        timeout: float,
        stall_seconds: float,
        policy: EgressPolicy,
    ) -> None:
        self.url = url
        self.policy = policy
        self.directory = directory
        self.path = directory / LOCAL_PLAYLIST
        self.version = playlist.version
        self.target_duration = playlist.target_duration
        self.timeout = timeout
        self.stall_seconds = max(stall_seconds, 3 * playlist.target_duration)
        self.poll_seconds = min(max(playlist.target_duration / 2, 0.5), 2.0)
        self.source_ended = False
        self.problem: str | None = None
        self.closed = False
        self.last_opened: int | None = None
        self.failed: set[int] = set()
        self._fed: list[HlsSegment] = []
        self._by_uri: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True, name="hls-follower")
        with self._lock:
            self._feed(feed)
            self._write()

    @property
    def fed(self) -> list[tuple[int, float]]:
        with self._lock:
            return [(s.seq, s.duration) for s in self._fed]

    @property
    def backlog_seconds(self) -> float:
        """Media fed at the start: ffmpeg may read it faster than real time."""
        with self._lock:
            return sum(s.duration for s in self._fed)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Feed nothing more: ffmpeg reads what it was given, then exits."""
        self._stop.set()
        with self._lock:
            self._close_locked()

    def note_log(self, line: str) -> None:
        """Learn from ffmpeg's log which source segments it opened or could not."""
        opening = _OPENING.search(line)
        failed = _FAILED.search(line)
        with self._lock:
            if opening is not None:
                seq = self._by_uri.get(opening.group(1))
                if seq is not None and (self.last_opened is None or seq > self.last_opened):
                    self.last_opened = seq
                    with (self.directory / OPENED_LOG).open("a") as out:
                        out.write(f"{seq}\n")
            elif failed is not None:
                self.failed.add(int(failed.group(1)))

    def media_sequence(self, start: float, end: float) -> tuple[int, int] | None:
        with self._lock:
            return media_sequence_of(
                [(s.seq, s.duration) for s in self._fed], start, end, self.last_opened
            )

    # -- the thread -----------------------------------------------------------------------
    def _follow(self) -> None:
        last_read = last_new = time.monotonic()
        while not self._stop.wait(self.poll_seconds):
            try:
                playlist = read_playlist(self.url, self.timeout, self.policy)
            except EgressRefusedError as exc:
                self._give_up(f"the playlist is refused: {exc}")
                return
            except SourceError as exc:
                if time.monotonic() - last_read > self.timeout:
                    self._give_up(f"cannot reload the playlist: {exc}")
                    return
                log.debug("%s: %s", redact_source(self.url), redact_text(str(exc), self.url))
                continue
            last_read = time.monotonic()
            with self._lock:
                if self.closed:
                    return
                newest = self._fed[-1].seq if self._fed else -1
                if not playlist.ended and started_over(playlist, newest):
                    self._give_up_locked("the source started its media sequence over")
                    return
                new = [s for s in playlist.segments if s.seq > newest]
                if new:
                    self._feed(new)
                    last_new = time.monotonic()
                if playlist.ended or playlist.vod:
                    self.source_ended = True
                    self._close_locked()
                    return
                if new:
                    self._write()
                elif time.monotonic() - last_new > self.stall_seconds:
                    self._give_up_locked(f"no new segment for {self.stall_seconds:.0f}s")
                    return

    def _give_up(self, problem: str) -> None:
        with self._lock:
            self._give_up_locked(problem)

    def _give_up_locked(self, problem: str) -> None:
        if not self.closed:
            self.problem = problem
            self._close_locked()

    def _feed(self, segments: Sequence[HlsSegment]) -> None:
        with (self.directory / FED_LOG).open("a") as out:
            for segment in segments:
                out.write(f"{segment.seq} {segment.duration!r}\n")
                self._by_uri[segment.uri] = segment.seq
        self._fed.extend(segments)

    def _close_locked(self) -> None:
        if not self.closed:
            self.closed = True
            self._write()

    def _write(self) -> None:
        # Segments ffmpeg has read are dropped from the copy, so it stays small however
        # long the recording; one before the last opened stays as context.
        keep = self._fed
        if self.last_opened is not None:
            keep = [s for s in self._fed if s.seq >= self.last_opened - 1] or self._fed[-1:]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(local_playlist(keep, self.version, self.target_duration, self.closed))
        tmp.replace(self.path)  # ffmpeg never reads half a playlist
