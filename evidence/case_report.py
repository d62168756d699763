"""A catalog case as the report renders it (:class:`evidence.report.ReportCase`), and
its PDF: the case routes, CLI and case packages call :func:`case_report_pdf`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from core.errors import NotFoundError
from core.events import StreamEvent
from evidence.cases import CaseView, case_view
from evidence.report import ReportCase, ReportMoment, ReportNote, render_case_report
from evidence.report_pdf import StreamEvent as ReportEvent
from storage.stores import Stores

CHAT_BEFORE = timedelta(seconds=60)  # the exchange leading up to a moment ("包邮吗?")
CARD_STATE_BEFORE = timedelta(hours=2)  # how far back a product card still on screen is
MAX_CHAT_LINES = 40


def report_case(view: CaseView) -> ReportCase:
    return ReportCase(
        id=view.case.id,
        external_id=view.case.external_id,
        title=view.case.title,
        status=view.case.status,
        moments=tuple(
            ReportMoment(
                stream=m.stream,
                start_offset=m.moment.start_offset,
                end_offset=m.moment.end_offset,
                found_by=m.moment.found_by,
                matched=m.matched,
                tags=m.tags,
                notes=tuple(
                    ReportNote(
                        kind=o.row.kind,
                        text=o.row.text,
                        author=o.row.author,
                        at=o.row.at,
                        signature_ok=o.signature_ok,
                    )
                    for o in m.overlays
                    if o.row.kind != "tag"
                ),
            )
            for m in view.moments
        ),
    )


def room_events(stores: Stores, stream: str, since: datetime, until: datetime) -> list[ReportEvent]:
    """What the live room showed at a moment: the product cards on screen at its end
    (each product's last card event before it, unless removed) and the chat of the minute
    before it through its end, in time order."""
    try:
        row = stores.catalog.get_stream(stream)
    except NotFoundError:
        return []
    cards: dict[str, StreamEvent] = {}
    for stored in stores.catalog.events_between(
        row.id, until - CARD_STATE_BEFORE, until, kinds=("product_card",)
    ):
        event = StreamEvent.from_json(json.loads(stored.body))
        cards[event.sku or event.title or event.id] = event
    shown = [c for c in cards.values() if c.action != "removed"]
    chat = [
        StreamEvent.from_json(json.loads(stored.body))
        for stored in stores.catalog.events_between(
            row.id, since - CHAT_BEFORE, until, kinds=("chat",), limit=MAX_CHAT_LINES
        )
    ]
    out = [ReportEvent(at=c.at, kind="product card", text=_card_text(c)) for c in shown]
    out += [
        ReportEvent(at=c.at, kind="chat", text=f"{c.user or '?'}: {c.text or ''}") for c in chat
    ]
    return sorted(out, key=lambda e: e.at)


def _card_text(card: StreamEvent) -> str:
    price = "" if card.price is None else f" ¥{card.price:g}"
    sku = f" (SKU {card.sku})" if card.sku else ""
    return f"{card.action or 'shown'}: {card.title or ''}{price}{sku}"


def case_report_pdf(stores: Stores, case_id: int, generated_by: str) -> bytes:
    """The case's signed PDF report (the caller audits the read)."""
    return render_case_report(
        stores,
        report_case(case_view(stores, case_id)),
        generated_by=generated_by,
        events=room_events,
    )
