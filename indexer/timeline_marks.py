"""What happened around a moment, for the web page's timeline strip and moment view:
banned terms (said, in the chat, on screen), chat, product cards, on-screen text, gaps
and price mismatches, each a mark with its offset; and the card state at the window's
start (what a viewer saw before the first mark)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from compliance.matcher import load_lexicon
from core.errors import InvalidInputError
from core.phonetic import SoundText
from core.timeutil import iso
from indexer.prices import card_product, mismatch_hit, price_timeline, stream_origin
from indexer.service import matcher_for
from storage.events import EventService
from storage.models import Stream
from storage.stores import Stores

MAX_WINDOW = timedelta(hours=2)  # a strip covers minutes around a moment, not a day
MARK_KINDS = ("banned", "chat", "card", "screen", "gap", "price_mismatch")


@dataclass(frozen=True)
class Mark:
    kind: str  # one of MARK_KINDS
    offset: float
    end_offset: float
    at: datetime
    text: str
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "offset": round(self.offset, 3),
            "end_offset": round(self.end_offset, 3),
            "at": iso(self.at),
            "text": self.text,
            **self.detail,
        }


def timeline_marks(
    stores: Stores, stream: Stream, start: datetime, end: datetime
) -> dict[str, Any]:
    if end <= start:
        raise InvalidInputError("end is not after start")
    if end - start > MAX_WINDOW:
        raise InvalidInputError(f"a timeline covers at most {MAX_WINDOW.seconds // 60} minutes")
    origin = stream_origin(stores, stream)
    if origin is None:
        return {"stream": stream.name, "marks": [], "cards": []}

    def offset_of(at: datetime) -> float:
        return (at - origin).total_seconds()

    catalog = stores.catalog
    matcher = matcher_for(load_lexicon(stores.settings.lexicon_path))
    products = catalog.products(stream.id)
    marks: list[Mark] = []
    for hit in catalog.banned_hits([stream.id], start, end):
        detail = {"source_kind": "speech", "term": hit.term, "category": hit.category}
        marks.append(Mark("banned", hit.offset, hit.end_offset, hit.at, hit.text, detail))
    events = EventService(stores).events(stream.id, start, end, ["chat", "gap"])
    for event in events:
        offset = offset_of(event.at)
        text = event.text or ""
        if event.kind == "gap":
            until = event.until or event.at
            marks.append(
                Mark("gap", offset, offset_of(until), event.at, text, {"source_kind": "events"})
            )
            continue
        marks.append(Mark("chat", offset, offset, event.at, text, {"user": event.user}))
        for found in matcher.find(text, SoundText.of(text)):
            detail = {"source_kind": "chat", "term": found.term, "category": found.category}
            marks.append(Mark("banned", offset, offset, event.at, text, detail))
    cards = EventService(stores).events(stream.id, None, end, ["product_card"])
    for card in cards:
        if card.at >= start:
            detail = {"action": card.action, "price": card.price, "sku": card.sku}
            detail["product"] = card_product(card, products)
            marks.append(Mark("card", offset_of(card.at), offset_of(card.at), card.at,
                              card.title or "", detail))  # fmt: skip
    for line in catalog.screen_text(stream.id, stream.name, start, end):
        marks.append(Mark("screen", line.first_offset, line.last_offset, line.first_seen_at,
                          line.text, {"keyframe": line.keyframe_key}))  # fmt: skip
        for found in matcher.find(line.text, SoundText.of(line.text)):
            detail = {"source_kind": "screen", "term": found.term, "category": found.category}
            marks.append(
                Mark("banned", line.first_offset, line.last_offset, line.first_seen_at,
                     line.text, detail)
            )  # fmt: skip
    for gap in catalog.gaps_between(stream.id, start, end):
        marks.append(Mark("gap", offset_of(gap.starts_at), offset_of(gap.ends_at),
                          gap.starts_at, gap.reason or "", {"source_kind": "recording"}))  # fmt: skip
    for point in price_timeline(stores, stream, start, end).mismatches():
        hit = mismatch_hit(point, stream.name)
        marks.append(Mark("price_mismatch", point.offset, point.offset, point.at, point.text, hit))
    up: dict[str, dict[str, Any]] = {}
    for card in cards:
        if card.at < start:
            product = card_product(card, products)
            if card.action == "removed":
                up.pop(product, None)
            else:
                up[product] = {"product": product, "title": card.title, "price": card.price,
                               "sku": card.sku, "at": iso(card.at)}  # fmt: skip
    marks.sort(key=lambda m: (m.offset, MARK_KINDS.index(m.kind)))
    return {
        "stream": stream.name,
        "start": iso(start),
        "end": iso(end),
        "cards": list(up.values()),  # the cards up at ``start``
        "marks": [m.to_json() for m in marks],
    }
