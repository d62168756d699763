"""Turn what a user gives into something ffmpeg can read.

Media URLs (RTMP, HLS, HTTP-FLV, SRT) and local files go to ffmpeg as they are. Live-room
page URLs (Douyin, Huya, Bilibili, ...) are resolved to their best stream through
streamlink when that optional extra is installed.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from core.egress import EgressPolicy, EgressTarget, Resolver, check_url_text
from core.errors import InvalidInputError, SourceUnreachableError
from core.settings import Settings
from recorder.ffmpeg import SOURCE_PROTOCOLS, ffmpeg_protocol, is_network_source

MEDIA_SUFFIXES = (".m3u8", ".flv", ".ts", ".mp4", ".m4s", ".mpd", ".aac", ".mp3")
#: The schemes a stream source may have when it comes through the API.
SOURCE_SCHEMES = tuple(SOURCE_PROTOCOLS)


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


def check_source_allowed(
    source: str, settings: Settings, resolver: Resolver | None = None
) -> EgressTarget | None:
    """Refuse sources a caller of the API must not point the recorder at: every ffmpeg
    protocol but the network schemes of SOURCE_SCHEMES (``file:``, ``concat:``,
    ``subfile``, ``data:``, ``pipe:``, ``gopher://``, ``ftp://``, ``udp://``, ``tls://``,
    ``unix:``, ...), a local path unless ``allow_file_sources``, and hosts the egress
    policy refuses (the recorder would fetch from inside our network: server-side
    request forgery). Returns what the policy checked (None for an allowed path)."""
    source = source.strip()
    check_url_text(source, "source")
    protocol = ffmpeg_protocol(source)
    if protocol is None:
        if settings.allow_file_sources:
            return None
        raise InvalidInputError("only network sources (rtmp, http(s), srt, ...) can be recorded")
    if protocol not in SOURCE_SCHEMES or not is_network_source(source):
        raise InvalidInputError(
            f"source protocol {protocol!r} cannot be recorded from the API"
            f" (only {', '.join(SOURCE_SCHEMES)})"
        )
    return check_network_source(source, settings, resolver)


def check_network_source(
    source: str, settings: Settings, resolver: Resolver | None = None
) -> EgressTarget:
    """The egress policy for a network source (the API when it is given, the recorder at
    each connect): EgressRefusedError, or SourceUnreachableError if the host does not
    resolve."""
    policy = EgressPolicy.for_settings(settings, sources=True, resolver=resolver)
    return policy.check_url(
        source.strip(), SOURCE_SCHEMES, what="source", unresolvable=SourceUnreachableError
    )
