"""Redacting stream sources: what only an admin may see of a live URL.

A source URL often carries its credentials: ``user:password@`` (userinfo), tokens in the
query string (``?auth_key=``, SRT's ``passphrase=``/``streamid=``) and, for RTMP, the
stream key as the path after the application (``rtmp://host/app/STREAMKEY``). Whoever
holds them can pull or hijack the stream, so everywhere but the admin's view of a stream
(the API for other roles, the audit log, log lines, chained gap and end reasons) shows
:func:`redact_source` of a URL, and :func:`redact_text` of free text that may quote one
(ffmpeg's error messages do).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"

# Schemes whose path after the application is the stream key (ffmpeg's RTMP family).
RTMP_SCHEMES = frozenset({"rtmp", "rtmps", "rtmpe", "rtmpt", "rtmpte", "rtmpts"})

# A URL inside free text: a scheme, "://", then anything up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}://[^\s'\"<>`]+")
_TRAILING = ".,;:)]}"
# Shorter secret parts are not searched for in free text: they would mask ordinary words.
_MIN_SECRET = 4


def redact_source(source: str) -> str:
    """``source`` without userinfo, query, fragment or RTMP stream key (each becomes
    ``***``); a local path or something that is no URL comes back as it is."""
    if "://" not in source:
        return source
    try:
        parts = urlsplit(source)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # not parseable as a URL: keep only the scheme
        return source.split("://", 1)[0] + "://" + MASK
    if ":" in host:  # an IPv6 literal goes back in brackets
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if "@" in parts.netloc:
        netloc = f"{MASK}@{netloc}"
    path = parts.path
    if parts.scheme.lower() in RTMP_SCHEMES:
        app, _, key = path.lstrip("/").partition("/")
        path = f"/{app}/{MASK}" if key else path
    query = MASK if parts.query else ""
    fragment = MASK if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


def source_secrets(source: str) -> list[str]:
    """The secret parts of a source as they may appear in text (raw and percent-decoded),
    longest first: userinfo, password, query, each query value, the RTMP stream key."""
    if "://" not in source:
        return []
    try:
        parts = urlsplit(source)
    except ValueError:
        return []
    found: set[str] = set()
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        found.add(userinfo)
        found.add(userinfo.partition(":")[2])
    if parts.query:
        found.add(parts.query)
        for pair in parts.query.split("&"):
            found.add(pair.partition("=")[2])
    if parts.fragment:
        found.add(parts.fragment)
    if parts.scheme.lower() in RTMP_SCHEMES:
        found.add(parts.path.lstrip("/").partition("/")[2])
    found |= {unquote(s) for s in found}
    return sorted((s for s in found if len(s) >= _MIN_SECRET), key=len, reverse=True)


def redact_text(text: str, source: str | None = None) -> str:
    """Free text (an error message, a log line) with every URL in it redacted, and, when
    the source it is about is given, every secret part of that source masked too (ffmpeg
    may quote a stream key or a query alone)."""

    def one(match: re.Match[str]) -> str:
        url = match.group(0)
        kept = url.rstrip(_TRAILING)
        return redact_source(kept) + url[len(kept) :]

    redacted = _URL_IN_TEXT.sub(one, text)
    for secret in source_secrets(source) if source else []:
        redacted = redacted.replace(secret, MASK)
    return redacted
