"""The layout of a case report: typed pages in, unsigned PDF bytes out (evidence/report.py
gathers what goes in, evidence/report_signing.py signs what comes out).

Library: fpdf2, pure Python, which embeds TrueType fonts subset to the glyphs used (via
fontTools) and JPEG pictures as they are (DCTDecode, no re-encoding), so the keyframe in
the PDF is ffmpeg's JPEG byte for byte. reportlab would do too, but is heavier and its
TrueType collections support is weaker.

Font: WenQuanYi Micro Hei from the ``paperang-p2-fonts-cjk`` wheel (2.3 MB; the font
says Apache-2.0 in its own name table; TrueType outlines, embedding allowed): the smallest
permissively licensed Simplified Chinese font on PyPI (the Noto CJK wheels are 15-20 MB).
It has one weight, so marked words are red and underlined, not bold.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from core.errors import ConfigError
from core.timeutil import iso

FONT = "cjk"
FONT_PACKAGE = "paperang_p2_fonts_cjk"
FONT_FILE = "fonts/wqy-microhei.ttc"
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")  # no summer time since 1991
MARK = (200, 0, 0)
GREY = (110, 110, 110)
OVERLAY = (0, 70, 160)
BAD = (200, 0, 0)
PICTURE_WIDTH_MM = 150.0


# -- what goes in ----------------------------------------------------------------------
@dataclass(frozen=True)
class ChainCheck:
    """``verify`` of one stream's chain when the report was made."""

    stream: str
    ok: bool
    summary: str  # what was checked, or the first thing that failed


@dataclass(frozen=True)
class TrustedTime:
    stream: str
    head: int  # the chain entry the TSA stamped (its signed head)
    tsa: str
    at: datetime


@dataclass(frozen=True)
class StreamRange:
    stream: str
    since: datetime
    until: datetime
    moments: int


@dataclass(frozen=True)
class Cover:
    case_id: int
    external_id: str | None
    title: str
    status: str
    generated_at: datetime
    generated_by: str
    ranges: tuple[StreamRange, ...]
    checks: tuple[ChainCheck, ...]
    key_id: str  # the installation's Ed25519 signing key id
    report_certificate: str  # SHA-256 of the report-signing certificate
    trusted_times: tuple[TrustedTime, ...]
    tsas: tuple[str, ...]  # the TSAs asked to stamp the report's signature


@dataclass(frozen=True)
class Keyframe:
    jpeg: bytes | None  # None when there is no picture (audio only, a gap)
    segment: int | None
    into_segment: float  # seconds into the segment's media
    at: datetime
    note: str  # why there is no picture, or how it was made


@dataclass(frozen=True)
class TranscriptLine:
    offset: float
    at: datetime
    text: str
    in_moment: bool  # said within the moment (else context around it)


@dataclass(frozen=True)
class Overlay:
    kind: str  # note | tag | correction
    text: str
    author: str
    at: datetime
    signature_ok: bool


@dataclass(frozen=True)
class SegmentRef:
    seq: int
    starts_at: datetime
    duration: float
    sha256: str
    entry_idx: int  # its position in the stream's manifest (hash chain)


@dataclass(frozen=True)
class StreamEvent:
    """A live room event shown on a moment's page: a product card on screen at the
    moment, or a line of the chat around it (evidence/case_report.py)."""

    at: datetime
    kind: str
    text: str


@dataclass(frozen=True)
class MomentPage:
    number: int
    stream: str
    start_offset: float
    end_offset: float
    since: datetime | None  # None when the stream is not known
    until: datetime | None
    found_by: str
    matched: tuple[str, ...]
    tags: tuple[str, ...]
    keyframe: Keyframe | None
    transcript: tuple[TranscriptLine, ...]
    overlays: tuple[Overlay, ...]
    segments: tuple[SegmentRef, ...]
    events: tuple[StreamEvent, ...]
    link: str
    problem: str | None = None  # what could not be shown, one line


# -- times -------------------------------------------------------------------------------
def beijing_long(moment: datetime) -> str:
    """The Chinese long form in Beijing time, e.g. 2026年11月20日 20:00:05（北京时间）."""
    local = moment.astimezone(BEIJING)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M:%S}（北京时间，UTC+8）"


def both_times(moment: datetime) -> str:
    return f"{iso(moment)} · {beijing_long(moment)}"


# -- the document ------------------------------------------------------------------------
def font_path() -> Path:
    try:
        path = Path(str(resources.files(FONT_PACKAGE).joinpath(FONT_FILE)))
    except ModuleNotFoundError:
        path = Path("/nonexistent")
    if not path.is_file():
        raise ConfigError("the report's Chinese font is missing: pip install paperang-p2-fonts-cjk")
    return path


class _Report(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(format="A4", unit="mm")
        self.footer_text = footer_text
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=15)
        self.add_font(FONT, "", str(font_path()), collection_font_number=0)
        self.set_font(FONT, size=10)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font(FONT, size=7)
        self.set_text_color(*GREY)
        self.cell(0, 5, f"{self.footer_text} · {self.page_no()}/{{nb}}", align="C")
        self.set_text_color(0)

    # small helpers: every line starts at the left margin
    def para(self, text: str, size: float = 10, colour: tuple[int, int, int] = (0, 0, 0)) -> None:
        self.set_font(FONT, size=size)
        self.set_text_color(*colour)
        self.multi_cell(0, size * 0.5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0)

    def heading(self, text: str, size: float = 13) -> None:
        self.ln(2)
        self.para(text, size)
        y = self.get_y()
        self.set_draw_color(160, 160, 160)
        self.line(self.l_margin, y, self.w - self.r_margin, y)
        self.ln(1.5)

    def field(self, label: str, value: str, colour: tuple[int, int, int] = (0, 0, 0)) -> None:
        self.set_font(FONT, size=9)
        self.set_text_color(*GREY)
        self.cell(38, 5, label)
        self.set_text_color(*colour)
        self.multi_cell(0, 5, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0)

    def marked(self, text: str, terms: Sequence[str], colour: tuple[int, int, int]) -> None:
        """``text`` as flowing lines with each occurrence of ``terms`` red and underlined."""
        height = 5.0
        for piece, hit in _spans(text, terms):
            self.set_font(FONT, "U" if hit else "", 10)
            self.set_text_color(*(MARK if hit else colour))
            self.write(height, piece)
        self.set_font(FONT, size=10)
        self.set_text_color(0)
        self.ln(height + 0.8)


def _spans(text: str, terms: Sequence[str]) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, is a match) runs; matching ignores letter case."""
    low = text.lower()
    marked = [False] * len(text)
    for term in terms:
        needle = term.strip().lower()
        if not needle:
            continue
        at = low.find(needle)
        while at >= 0:
            for i in range(at, at + len(needle)):
                marked[i] = True
            at = low.find(needle, at + len(needle))
    spans: list[tuple[str, bool]] = []
    for char, hit in zip(text, marked, strict=True):
        if spans and spans[-1][1] == hit:
            spans[-1] = (spans[-1][0] + char, hit)
        else:
            spans.append((char, hit))
    return spans


def layout_report(cover: Cover, pages: Sequence[MomentPage]) -> bytes:
    pdf = _Report(f"LiveWitness 证据保全报告 · case {cover.case_id}")
    pdf.set_title(f"证据保全报告 Evidence report: case {cover.case_id} {cover.title}")
    pdf.set_author("LiveWitness")
    pdf.set_creator("LiveWitness")
    pdf.set_creation_date(cover.generated_at)
    _cover(pdf, cover, len(pages))
    for page in pages:
        _moment(pdf, page)
    return bytes(pdf.output())


def _cover(pdf: _Report, cover: Cover, moments: int) -> None:
    pdf.add_page()
    pdf.para("证据保全报告", 22)
    pdf.para("Evidence preservation report", 14, GREY)
    pdf.ln(3)
    pdf.heading("案件 Case")
    pdf.field("Case", f"#{cover.case_id}")
    pdf.field("External id", cover.external_id or "(none)")
    pdf.field("Title", cover.title)
    pdf.field("Status", cover.status)
    pdf.field("Moments", str(moments))
    pdf.field("Generated", iso(cover.generated_at))
    pdf.field("生成时间", beijing_long(cover.generated_at))
    pdf.field("Generated by", cover.generated_by)

    pdf.heading("直播流与时间范围 Streams and ranges")
    if not cover.ranges:
        pdf.para("This case has no moments.", 9, GREY)
    for r in cover.ranges:
        pdf.field(r.stream, f"{iso(r.since)} – {iso(r.until)} ({r.moments} moments)")
        pdf.field("", f"{beijing_long(r.since)} – {beijing_long(r.until)}", GREY)

    pdf.heading("完整性校验 Chain verification")
    pdf.para(
        "Each stream's hash chain was verified when this report was made: every stored"
        " segment and manifest entry re-read and checked against its SHA-256, each entry's"
        " link to the one before it, the signed heads and the RFC 3161 tokens"
        " (livewitness verify).",
        8.5,
        GREY,
    )
    for check in cover.checks:
        verdict = "VERIFIED 通过" if check.ok else "FAILED 未通过"
        pdf.field(check.stream, f"{verdict}: {check.summary}", (0, 0, 0) if check.ok else BAD)

    pdf.heading("签名与可信时间 Signature and trusted time")
    pdf.field("Signing key id", f"{cover.key_id} (Ed25519; livewitness keys signing)")
    pdf.field("Report certificate", f"SHA-256 {cover.report_certificate}")
    pdf.para(
        "This PDF is signed (PAdES) with the installation's report-signing key, whose"
        " certificate is issued by the signing key above; validate it with"
        " `pyhanko sign validate --trust signing.ed25519.cert.pub.pem report.pdf` or `pdfsig`."
        + (
            f" Its signature carries a time-stamp requested from {', '.join(cover.tsas)}."
            if cover.tsas
            else " No time-stamping authority is configured: the signature has no trusted time."
        ),
        8.5,
        GREY,
    )
    if cover.trusted_times:
        pdf.para("Trusted times of the chains (RFC 3161 tokens over signed heads):", 9)
        for t in cover.trusted_times:
            pdf.field(t.stream, f"head {t.head}: {iso(t.at)} by {t.tsa}")
    else:
        pdf.field("Trusted times", "no RFC 3161 tokens are stored for these chains")

    pdf.heading("阅读说明 How to read")
    pdf.para(
        "机器转写 Machine transcript: the speech recogniser's words, as stored with the"
        " evidence; matched words are red and underlined. 人工批注 Overlays: reviewers'"
        " notes, tags and corrections, stored apart from the evidence and signed by their"
        " authors; they never change the evidence or the machine transcript. Keyframes are"
        " decoded by ffmpeg from the original stored segment at the moment's start.",
        8.5,
    )


def _moment(pdf: _Report, page: MomentPage) -> None:
    pdf.add_page()
    pdf.para(f"时刻 Moment {page.number}: {page.stream}", 15)
    where = f"{page.start_offset:.1f} s – {page.end_offset:.1f} s from the stream's start"
    pdf.field("Offsets", where)
    if page.since is not None and page.until is not None:
        pdf.field("Time (UTC)", f"{iso(page.since)} – {iso(page.until)}")
        pdf.field("北京时间", f"{beijing_long(page.since)} – {beijing_long(page.until)}")
    pdf.field("Found by", page.found_by)
    pdf.field("Tags", ", ".join(page.tags) if page.tags else "(none)")
    pdf.field("Link", page.link)
    if page.problem:
        pdf.field("Not shown", page.problem, BAD)

    pdf.heading("关键帧 Keyframe", 11)
    frame = page.keyframe
    if frame is not None and frame.jpeg is not None:
        # keep_aspect_ratio with a box: pictures of any shape fit the page width.
        pdf.image(
            io.BytesIO(frame.jpeg),
            w=PICTURE_WIDTH_MM,
            h=PICTURE_WIDTH_MM * 9 / 16,
            keep_aspect_ratio=True,
            x=(pdf.w - PICTURE_WIDTH_MM) / 2,
        )
    if frame is not None:
        pdf.para(frame.note, 8, GREY)

    pdf.heading("机器转写 Machine transcript (not edited)", 11)
    if not page.transcript:
        pdf.para("No transcript is stored for this time.", 9, GREY)
    for line in page.transcript:
        pdf.set_font(FONT, size=7.5)
        pdf.set_text_color(*GREY)
        pdf.cell(
            0, 4, f"{line.offset:8.1f} s   {iso(line.at)}", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        pdf.marked(line.text, page.matched, (0, 0, 0) if line.in_moment else GREY)

    pdf.heading("人工批注 Overlays: notes, tags, corrections (not evidence)", 11)
    if not page.overlays:
        pdf.para("No notes.", 9, GREY)
    for overlay in page.overlays:
        label = {"note": "Note 批注", "tag": "Tag 标签", "correction": "Correction 更正"}.get(
            overlay.kind, overlay.kind
        )
        checked = "signature verified" if overlay.signature_ok else "SIGNATURE DOES NOT VERIFY"
        pdf.para(f"[{label}] {overlay.text}", 10, OVERLAY)
        pdf.para(
            f"    by {overlay.author}, {iso(overlay.at)}; {checked}",
            7.5,
            GREY if overlay.signature_ok else BAD,
        )

    if page.events:
        pdf.heading("直播间事件 Live room events", 11)
        for event in page.events:
            pdf.para(f"{iso(event.at)}  [{event.kind}] {event.text}", 9)

    pdf.heading("原始分段 Original segments and manifest positions", 11)
    if not page.segments:
        pdf.para("No stored segment covers this moment.", 9, GREY)
    for seg in page.segments:
        pdf.para(
            f"segment {seg.seq} · manifest entry {seg.entry_idx} · {iso(seg.starts_at)}"
            f" · {seg.duration:.3f} s",
            8.5,
        )
        pdf.para(f"    SHA-256 {seg.sha256}", 7.5, GREY)
