"""A case's court-ready report (证据保全报告): a signed PDF a person can read.

The cover page says what the case is, which streams and time ranges it draws on, when
the report was made (ISO 8601 UTC and the Beijing long form), the result of ``verify``
on every chain it draws on, the installation's signing key id and the trusted times of
the chains' RFC 3161 tokens. Then one page or more per moment: the keyframe decoded by
ffmpeg from the ORIGINAL stored segment (checked against its SHA-256) at the moment's
start, the machine transcript around it with the matched words marked, the overlays
(notes, tags, corrections) labelled apart from it, the covering segments' SHA-256 and
manifest positions, and the moment's link. The PDF is signed (PAdES) with key material
of the installation, time-stamped when a TSA is configured (evidence/report_signing.py).

Layout: evidence/report_pdf.py. Callers (the case routes, CLI and packages) convert a
case into :class:`ReportCase` and call :func:`render_case_report`; they audit the read.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from compliance.alerts import moment_link
from core.errors import LiveWitnessError, NotFoundError, StorageError
from core.timeutil import iso, utc_now
from evidence.moments import (
    segment_bytes,
    segments_covering,
    stream_offset_to_time,
    transcripts_around,
    utterances_overlapping,
)
from evidence.report_pdf import (
    ChainCheck,
    Cover,
    Keyframe,
    MomentPage,
    Overlay,
    SegmentRef,
    StreamEvent,
    StreamRange,
    TranscriptLine,
    TrustedTime,
    layout_report,
)
from evidence.report_signing import load_report_key, sign_report
from evidence.verify import VerifyReport, verify_stream
from storage.models import Segment
from storage.scratch import scratch
from storage.stores import Stores
from storage.timestamping import tsa_label

log = logging.getLogger(__name__)

CONTEXT_SECONDS = 8.0  # transcript shown before and after a moment
FRAME_SECONDS = 0.04  # one frame at 25 fps: the span a keyframe is looked up in
FFMPEG_TIMEOUT_SECONDS = 120.0
MAX_TRUSTED_TIMES = 12  # per stream, on the cover (the latest heads)


@dataclass(frozen=True)
class ReportNote:
    """An overlay shown beside the machine transcript, never replacing it."""

    kind: str  # "note" | "tag" | "correction"
    text: str
    author: str  # the audited actor, e.g. "reviewer-key 3 (alice)"
    at: datetime  # UTC
    signature_ok: bool  # the overlay's signature checked when the report was built


@dataclass(frozen=True)
class ReportMoment:
    stream: str
    start_offset: float  # seconds from stream start (the moment, lead-in already applied)
    end_offset: float
    found_by: str  # the hit or search that found it, e.g. 'search "包邮"'
    matched: tuple[str, ...]  # words to mark in the transcript excerpt
    tags: tuple[str, ...]
    notes: tuple[ReportNote, ...]


@dataclass(frozen=True)
class ReportCase:
    id: int
    external_id: str | None
    title: str
    status: str
    moments: tuple[ReportMoment, ...]


#: Where a moment's live room events (chat, product card) come from: ``(stores, stream,
#: since, until)`` to the events shown beside it (evidence/case_report.py reads the
#: stored stream events).
EventSource = Callable[[Stores, str, datetime, datetime], Sequence[StreamEvent]]


def no_events(stores: Stores, stream: str, since: datetime, until: datetime) -> list[StreamEvent]:
    return []


def render_case_report(
    stores: Stores,
    case: ReportCase,
    *,
    generated_by: str,
    events: EventSource = no_events,
    now: datetime | None = None,
) -> bytes:
    """The signed PDF (bytes)."""
    generated_at = now or utc_now()
    key = load_report_key(stores.settings, stores.chain.signer)
    streams = sorted({m.stream for m in case.moments})
    checks = [_check_chain(stores, name) for name in streams]
    pages = [
        _moment_page(stores, number, moment, events)
        for number, moment in enumerate(case.moments, start=1)
    ]
    cover = Cover(
        case_id=case.id,
        external_id=case.external_id,
        title=case.title,
        status=case.status,
        generated_at=generated_at,
        generated_by=generated_by,
        ranges=tuple(_ranges(pages)),
        checks=tuple(check for check, _report in checks),
        key_id=key.key_id,
        report_certificate=key.fingerprint,
        trusted_times=tuple(t for name in streams for t in _trusted_times(stores, name)),
        tsas=tuple(tsa_label(url) for url in stores.settings.tsa_urls),
    )
    pdf = layout_report(cover, pages)
    signed = sign_report(
        pdf,
        key,
        stores.settings,
        reason=f"LiveWitness evidence report, case {case.id}",
    )
    return signed.pdf


# -- cover -------------------------------------------------------------------------------
def _check_chain(stores: Stores, stream: str) -> tuple[ChainCheck, VerifyReport | None]:
    try:
        report = verify_stream(
            stores.catalog,
            stores.blobs,
            stores.settings.signing_keys_dir,
            stream,
            tsa_ca_bundle=stores.settings.tsa_ca_bundle,
        )
    except LiveWitnessError as exc:  # the report says so; it never hides a failure
        return ChainCheck(stream, False, str(exc)), None
    summary = (
        f"{report.entries} entries, {report.segments} segments"
        f" ({report.recorded_seconds:.1f} s recorded, {report.gaps} gaps),"
        f" {report.bytes_checked} bytes re-read; {report.signatures} signed heads"
        f" (last: entry {report.signed_head}); {report.timestamps} RFC 3161 tokens checked"
    )
    if report.stamped_at is not None:
        summary += f" (entry {report.stamped_head} stamped at {iso(report.stamped_at)})"
    if report.notes:
        summary += "; " + "; ".join(report.notes)
    return ChainCheck(stream, True, summary), report


def _trusted_times(stores: Stores, stream: str) -> list[TrustedTime]:
    try:
        stream_id = stores.catalog.get_stream(stream).id
    except NotFoundError:
        return []
    tokens = stores.catalog.timestamp_tokens(stream_id)
    earliest: dict[int, TrustedTime] = {}
    for token in tokens:  # by head, then by the TSA's time: the first is the earliest
        earliest.setdefault(
            token.head_idx,
            TrustedTime(stream, token.head_idx, tsa_label(token.tsa_url), token.gen_time),
        )
    return [earliest[head] for head in sorted(earliest)][-MAX_TRUSTED_TIMES:]


def _ranges(pages: Sequence[MomentPage]) -> list[StreamRange]:
    ranges = []
    for stream in sorted({p.stream for p in pages}):
        timed = [p for p in pages if p.stream == stream and p.since and p.until]
        if timed:
            ranges.append(
                StreamRange(
                    stream,
                    min(p.since for p in timed if p.since),
                    max(p.until for p in timed if p.until),
                    len(timed),
                )
            )
    return ranges


# -- moments -----------------------------------------------------------------------------
def _moment_page(
    stores: Stores, number: int, moment: ReportMoment, events: EventSource
) -> MomentPage:
    link = moment_link(stores.settings, moment.stream, moment.start_offset)
    overlays = tuple(Overlay(n.kind, n.text, n.author, n.at, n.signature_ok) for n in moment.notes)
    page = MomentPage(
        number=number,
        stream=moment.stream,
        start_offset=moment.start_offset,
        end_offset=moment.end_offset,
        since=None,
        until=None,
        found_by=moment.found_by,
        matched=moment.matched,
        tags=moment.tags,
        keyframe=None,
        transcript=(),
        overlays=overlays,
        segments=(),
        events=(),
        link=link,
    )
    try:
        since = stream_offset_to_time(stores, moment.stream, moment.start_offset)
        until = stream_offset_to_time(
            stores, moment.stream, max(moment.end_offset, moment.start_offset)
        )
    except LiveWitnessError as exc:
        return _replace(page, problem=str(exc))
    page = _replace(page, since=since, until=until)
    try:
        covering = segments_covering(
            stores, moment.stream, since, max(until, since + timedelta(seconds=FRAME_SECONDS))
        )
    except LiveWitnessError as exc:
        return _replace(page, problem=str(exc))
    page = _replace(
        page,
        segments=tuple(
            SegmentRef(s.seq, s.starts_at, s.duration, s.sha256, s.entry_idx) for s in covering
        ),
        transcript=tuple(_transcript(stores, moment)),
        keyframe=_keyframe(stores, moment.stream, since, covering),
        events=tuple(events(stores, moment.stream, since, until)),
    )
    return page


def _replace(page: MomentPage, **changes: object) -> MomentPage:
    return replace(page, **changes)  # type: ignore[arg-type]


def _transcript(stores: Stores, moment: ReportMoment) -> list[TranscriptLine]:
    low = max(0.0, moment.start_offset - CONTEXT_SECONDS)
    high = max(moment.end_offset, moment.start_offset) + CONTEXT_SECONDS
    stream = stores.catalog.get_stream(moment.stream)
    try:
        around = segments_covering(
            stores,
            moment.stream,
            stream_offset_to_time(stores, moment.stream, low),
            stream_offset_to_time(stores, moment.stream, high),
        )
    except LiveWitnessError:
        return []
    stored = transcripts_around(stores, stream.id, around)
    lines = []
    for utterance in utterances_overlapping(stored, low, high):
        inside = utterance.end_offset > moment.start_offset and utterance.offset < moment.end_offset
        lines.append(
            TranscriptLine(
                utterance.offset,
                stream_offset_to_time(stores, moment.stream, utterance.offset),
                utterance.text,
                inside,
            )
        )
    return lines


def _keyframe(stores: Stores, stream: str, at: datetime, covering: Sequence[Segment]) -> Keyframe:
    """The picture shown at ``at``, decoded by ffmpeg from the stored segment covering it
    (its bytes checked against their SHA-256 first) at the exact offset into it."""
    segment = next(
        (s for s in covering if s.starts_at <= at < s.starts_at + timedelta(seconds=s.duration)),
        covering[0] if covering else None,
    )
    if segment is None:
        return Keyframe(None, None, 0.0, at, "No stored segment covers this time.")
    into = max(0.0, (at - segment.starts_at).total_seconds())
    shown = segment.starts_at + timedelta(seconds=into)
    try:
        data = segment_bytes(stores, stream, segment.seq)
        with scratch(stores.settings, "report-frame-") as tmp:
            source = tmp / f"{segment.seq:08d}.ts"
            source.write_bytes(data)
            jpeg = decode_frame(stores.settings.ffmpeg, str(source), into)
    except LiveWitnessError as exc:
        return Keyframe(None, segment.seq, into, shown, f"No picture: {exc}")
    if jpeg is None:
        return Keyframe(
            None, segment.seq, into, shown, "No picture: the segment shows no video at this time."
        )
    note = (
        f"Decoded by ffmpeg from stored segment {segment.seq} (SHA-256 {segment.sha256[:16]}…,"
        f" checked) at {into:.3f} s into it: {iso(shown)}."
    )
    return Keyframe(jpeg, segment.seq, into, shown, note)


def decode_frame(ffmpeg: str, source: str, seconds: float) -> bytes | None:
    """The picture ``seconds`` into a media file as a JPEG, or None when it has no video.

    ``-ss`` after ``-i`` decodes from the file's start and drops what comes before, so the
    frame is exact (seeking an MPEG-TS input is not); a segment is seconds long."""
    command = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-i", source]
    command += ["-map", "0:v:0?", "-ss", f"{seconds:.6f}", "-frames:v", "1"]
    command += ["-pix_fmt", "yuvj420p", "-q:v", "2", "-c:v", "mjpeg", "-f", "image2pipe", "-"]
    try:
        result = subprocess.run(
            command, capture_output=True, timeout=FFMPEG_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        raise StorageError(f"ffmpeg took over {FFMPEG_TIMEOUT_SECONDS:g}s for a keyframe") from None
    said = result.stderr.decode(errors="replace")
    if result.returncode != 0 and "does not contain any stream" in said:
        return None  # audio only: 0:v:0? mapped nothing
    if result.returncode != 0:
        lines = said.strip().splitlines() or ["no output"]
        raise StorageError(f"ffmpeg could not decode the segment: {lines[-1]}")
    return result.stdout or None
