"""Turn what a user gives into something ffmpeg can read.

Media URLs (RTMP, HLS, HTTP-FLV, SRT) and local files go to ffmpeg as they are. Live-room
page URLs (Douyin, Huya, Bilibili, ...) are resolved to their best stream through
streamlink when that optional extra is installed.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from urllib.parse import urlparse

from core.errors import InvalidInputError, SourceUnreachableError
from core.settings import Settings
from recorder.ffmpeg import is_network_source

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


def check_source_allowed(source: str, settings: Settings) -> None:
    """Refuse sources a caller of the API must not point the recorder at: local files,
    and hosts that resolve to private, loopback, link-local or other internal addresses
    (the recorder would fetch from inside our network: server-side request forgery)."""
    source = source.strip()
    if not is_network_source(source):
        if settings.allow_file_sources:
            return
        raise InvalidInputError("only network sources (rtmp, http(s), srt, ...) can be recorded")
    host = urlparse(source).hostname
    if not host:
        raise InvalidInputError(f"no host in source URL {source!r}")
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise SourceUnreachableError(f"cannot resolve the source host {host!r}") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address.is_loopback:
            if not settings.allow_loopback_sources:
                raise InvalidInputError(f"source host {host} is a loopback address")
        elif address.is_link_local or address.is_multicast or address.is_unspecified:
            raise InvalidInputError(f"source host {host} is a link-local or reserved address")
        elif (address.is_private or address.is_reserved) and not settings.allow_private_sources:
            raise InvalidInputError(f"source host {host} is a private address")
