"""Turn what a user gives into something ffmpeg can read.

Media URLs (RTMP, HLS, HTTP-FLV, SRT) and local files go to ffmpeg as they are. Live-room
page URLs (Douyin, Huya, Bilibili, ...) are resolved to their best stream through
streamlink when that optional extra is installed.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from recorder.ffmpeg import is_network_source
from storage.errors import InvalidInputError, SourceUnreachableError

MEDIA_SUFFIXES = (".m3u8", ".flv", ".ts", ".mp4", ".m4s", ".mpd", ".aac", ".mp3")


def resolve_source(source: str) -> str:
    source = source.strip()
    if not source:
        raise InvalidInputError("no source given")
    if not is_network_source(source):
        if "://" in source:
            scheme = source.split("://", 1)[0]
            raise InvalidInputError(f"unsupported source scheme {scheme!r}")
        if not Path(source).is_file():
            raise SourceUnreachableError(f"cannot open {source} (no such file)")
        return source
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https") and not parsed.path.lower().endswith(MEDIA_SUFFIXES):
        return _resolve_page(source)
    return source


def _resolve_page(url: str) -> str:
    try:
        from streamlink import Streamlink
        from streamlink.exceptions import NoPluginError, PluginError
    except ImportError:
        return url  # without streamlink, let ffmpeg try the URL itself
    session = Streamlink()
    try:
        plugin_name, _plugin, _url = session.resolve_url(url)
    except NoPluginError:
        return url
    if plugin_name in ("http", "hls", "dash"):
        return url
    try:
        streams = session.streams(url)
    except PluginError as exc:
        raise SourceUnreachableError(f"cannot resolve {url} ({exc})") from exc
    best = streams.get("best")
    if best is None:
        raise SourceUnreachableError(f"{url} is not live now (no stream found)")
    return str(best.to_url())
