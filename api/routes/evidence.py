"""Moments, clips, playback and evidence packages: what reviewers and case systems use
to see and take away what was said. Every view and export goes into the audit log."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path as FsPath
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Path, Query
from fastapi.responses import FileResponse, Response

from api.deps import API, EvidenceViewer, ServicesDep, log_action
from api.links import moment_links
from api.schemas import ExportIn, MomentOut, UtteranceOut, WordOut
from core.errors import InvalidInputError
from core.timeutil import iso, parse_iso
from evidence.moments import (
    check_range_length,
    cut_clip,
    hls_playlist,
    segment_bytes,
    segments_covering,
    stream_offset_to_time,
    transcripts_around,
    utterances_overlapping,
)
from evidence.package import build_package
from storage.blob_keys import check_stream_name
from storage.scratch import new_scratch
from storage.stores import Stores

router = APIRouter(tags=["evidence"])
Offset = Annotated[float, Query(ge=0, le=10 * 365 * 86400, description="Seconds from start.")]
TRANSCRIPT_WINDOW = 60.0


def transcript_window(stores: Stores, stream: str, start: float, end: float) -> list[UtteranceOut]:
    """Utterances overlapping [start, end] seconds of the stream."""
    row = stores.catalog.get_stream(stream)
    origin = stream_offset_to_time(stores, stream, 0.0)  # offsets count from here
    since = origin + timedelta(seconds=max(start, 0.0))
    until = origin + timedelta(seconds=end, milliseconds=1)
    try:
        covering = segments_covering(stores, stream, since, until)
    except InvalidInputError:  # nothing recorded around there (a gap): no transcript
        return []
    return [
        UtteranceOut(
            text=u.text,
            start=u.start,
            offset=u.offset,
            end_offset=u.end_offset,
            words=[WordOut(text=w.text, offset=w.offset, end_offset=w.end_offset) for w in u.words],
        )
        for u in utterances_overlapping(
            transcripts_around(stores, row.id, covering), start, end + 0.001
        )
    ]


@router.get("/streams/{name}/moment", response_model=MomentOut)
def moment(name: str, offset: Offset, caller: EvidenceViewer, services: ServicesDep) -> MomentOut:
    """A moment: its time, the transcript around it, and where to play it."""
    stores = services.stores
    check_stream_name(name)
    at = stream_offset_to_time(stores, name, offset)
    log_action(services, caller, "moment.view", {"stream": name, "offset": offset})
    _, clip_url = moment_links(name, offset)
    return MomentOut(
        stream=name,
        offset=offset,
        at=iso(at),
        clip_url=clip_url,
        playlist_url=f"{API}/streams/{quote(name)}/playlist.m3u8",
        transcript=transcript_window(
            stores, name, offset - TRANSCRIPT_WINDOW / 2, offset + TRANSCRIPT_WINDOW / 2
        ),
    )


@router.get("/streams/{name}/transcript", response_model=list[UtteranceOut])
def transcript(
    name: str,
    caller: EvidenceViewer,
    services: ServicesDep,
    start: Offset = 0.0,
    end: Offset = 600.0,
) -> list[UtteranceOut]:
    """Utterances between two offsets (the web page follows playback with these)."""
    check_stream_name(name)
    if end < start or end - start > 3600:
        raise InvalidInputError("a transcript window runs forwards and is at most 3600 s")
    found = transcript_window(services.stores, name, start, end)
    log_action(
        services,
        caller,
        "transcript.read",
        {"stream": name, "start": start, "end": end, "utterances": len(found)},
    )
    return found


@router.get(
    "/streams/{name}/clip",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}, "description": "An MP4 (faststart)."}},
)
def clip(
    name: str,
    offset: Offset,
    caller: EvidenceViewer,
    services: ServicesDep,
    background: BackgroundTasks,
    before: Annotated[float, Query(ge=0, le=600)] = 10.0,
    after: Annotated[float, Query(ge=0, le=600)] = 20.0,
) -> FileResponse:
    """A playable clip around a moment, cut from the original segments. The headers
    X-Clip-Start-Offset and X-Clip-Start say where its first frame is in the stream."""
    stores = services.stores
    check_stream_name(name)
    if before + after > stores.settings.max_clip_seconds:
        raise InvalidInputError(f"a clip is at most {stores.settings.max_clip_seconds:g} s long")
    if before + after <= 0:
        raise InvalidInputError("a clip needs some length: before + after > 0")
    check_range_length(before + after)
    at = stream_offset_to_time(stores, name, offset)
    workdir = new_scratch(stores.settings, "clip-")
    try:
        info = cut_clip(stores, name, at, before, after, workdir / "clip.mp4")
    except BaseException:
        _remove(workdir)  # nothing of a failed clip stays behind
        raise
    background.add_task(_remove, workdir)
    log_action(
        services,
        caller,
        "moment.clip",
        {"stream": name, "offset": offset, "before": before, "after": after},
    )
    start_offset = offset - info.at_offset  # where the clip's first frame is in the stream
    return FileResponse(
        info.path,
        media_type="video/mp4",
        filename=f"{name}-{offset:.0f}s.mp4",
        headers={
            "X-Clip-Start": iso(info.start),
            "X-Clip-Start-Offset": f"{start_offset:.3f}",
            "Access-Control-Expose-Headers": "X-Clip-Start, X-Clip-Start-Offset",
        },
    )


@router.get(
    "/streams/{name}/playlist.m3u8",
    response_class=Response,
    responses={200: {"content": {"application/vnd.apple.mpegurl": {}}}},
)
def playlist(name: str, caller: EvidenceViewer, services: ServicesDep) -> Response:
    """The whole stream as HLS, each segment with its program date-time."""
    check_stream_name(name)
    text = hls_playlist(services.stores, name, lambda seq: f"segments/{seq}.ts")
    # A player reloads a live playlist every few seconds: audited once per key and stream
    # per window (the segments it then plays are audited one by one).
    if services.recent_reads.first_in_window(caller.key.id, f"playlist:{name}"):
        log_action(services, caller, "stream.playback", {"stream": name})
    return Response(text, media_type="application/vnd.apple.mpegurl")


@router.get(
    "/streams/{name}/segments/{seq}.ts",
    response_class=Response,
    responses={200: {"content": {"video/mp2t": {}}}},
)
def segment(
    name: str,
    seq: Annotated[int, Path(ge=0, le=10**9)],
    caller: EvidenceViewer,
    services: ServicesDep,
) -> Response:
    """One stored segment, byte for byte (audited: each read is one event)."""
    check_stream_name(name)
    data = segment_bytes(services.stores, name, seq)
    log_action(
        services,
        caller,
        "segment.read",
        {
            "stream": name,
            "seq": seq,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
    )
    return Response(data, media_type="video/mp2t")


@router.post(
    "/exports",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "The package."}},
)
def export(
    body: ExportIn, caller: EvidenceViewer, services: ServicesDep, background: BackgroundTasks
) -> FileResponse:
    """An evidence package: clip, original segments, transcript (JSON, SRT), manifest
    entries, signatures and a README on verifying it with sha256sum and openssl."""
    stores = services.stores
    name = check_stream_name(body.stream)
    since, until = parse_iso(body.since), parse_iso(body.until)
    if until <= since:
        raise InvalidInputError("the time range ends before it starts")
    if (until - since).total_seconds() > stores.settings.max_export_seconds:
        raise InvalidInputError(
            f"an export covers at most {stores.settings.max_export_seconds:g} s"
        )
    check_range_length((until - since).total_seconds())
    workdir = new_scratch(stores.settings, "export-")
    out = workdir / f"{name}-{since:%Y%m%dT%H%M%SZ}.zip"
    try:
        info = build_package(stores, name, since, until, out, requested_by=caller.actor)
    except BaseException:
        _remove(workdir)  # nothing of a failed export stays behind
        raise
    background.add_task(_remove, workdir)
    log_action(
        services,
        caller,
        "export",
        {"stream": name, "since": iso(since), "until": iso(until), "sha256": info.sha256},
    )
    return FileResponse(info.path, media_type="application/zip", filename=out.name)


def _remove(path: FsPath) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
