"""On-screen text (OCR) of a stream, and the chained keyframes it was read in."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from api.deps import API, EvidenceViewer, ServicesDep, log_action
from api.schemas import ScreenTextOut
from core.errors import InvalidInputError, NotFoundError
from core.timeutil import parse_iso
from storage.blob_keys import check_stream_name

router = APIRouter(tags=["evidence"])
MAX_RANGE_SECONDS = 24 * 3600
When = Annotated[str | None, Query(description="ISO 8601 with zone; open when left out.")]
_KEYFRAME_NAME = re.compile(r"^[0-9a-f]{64}$")


def keyframe_url(stream: str, blob_key: str, sha256: str) -> str:
    return f"{API}/streams/{quote(stream)}/keyframes/{sha256}.jpg" if blob_key else ""


@router.get("/streams/{name}/screen", response_model=list[ScreenTextOut])
def screen_text(
    name: str,
    caller: EvidenceViewer,
    services: ServicesDep,
    start: When = None,
    end: When = None,
) -> list[ScreenTextOut]:
    """On-screen text seen between ``start`` and ``end`` (a line seen across a segment
    cut is one record), in time order; audited."""
    stores = services.stores
    since = parse_iso(start) if start else None
    until = parse_iso(end) if end else None
    if since is not None and until is not None:
        if until < since:
            raise InvalidInputError("end is before start")
        if (until - since).total_seconds() > MAX_RANGE_SECONDS:
            raise InvalidInputError(f"a screen-text range is at most {MAX_RANGE_SECONDS} s")
    stream = stores.catalog.get_stream(check_stream_name(name))
    lines = stores.catalog.screen_text(stream.id, stream.name, since, until)
    frames = {kf.blob_key: kf.sha256 for kf in stores.catalog.keyframes(stream.id)}
    log_action(
        services,
        caller,
        "screen.read",
        {"stream": name, "start": start, "end": end, "lines": len(lines)},
    )
    out = []
    for line in lines:
        shown = line.to_json()
        del shown["keyframe"]
        sha256 = frames.get(line.keyframe_key, "")
        out.append(
            ScreenTextOut(**shown, keyframe_url=keyframe_url(name, line.keyframe_key, sha256))
        )
    return out


@router.get(
    "/streams/{name}/keyframes/{sha256}.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def keyframe(
    name: str,
    sha256: Annotated[str, Path(min_length=64, max_length=64)],
    caller: EvidenceViewer,
    services: ServicesDep,
) -> Response:
    """A chained keyframe, byte for byte (audited: each read is one event)."""
    check_stream_name(name)
    if not _KEYFRAME_NAME.fullmatch(sha256):
        raise InvalidInputError("a keyframe is named by its SHA-256 (64 lower-case hex digits)")
    stores = services.stores
    stream = stores.catalog.get_stream(name)
    found = stores.catalog.keyframe(stream.id, sha256)
    if found is None:
        raise NotFoundError(f"stream {name!r} has no keyframe {sha256}")
    data = stores.blobs.get_bytes(found.blob_key)
    log_action(
        services,
        caller,
        "keyframe.read",
        {"stream": name, "key": found.blob_key, "sha256": sha256, "bytes": len(data)},
    )
    return Response(data, media_type="image/jpeg")
