"""What happened around a moment, for the web page's timeline strip and moment view:
banned terms (said, in the chat, on screen), chat, product cards, on-screen text, gaps
and price mismatches, each a mark with its offset; and the card state at the window's
start (what a viewer saw before the first mark)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from compliance.matcher import load_lexicon, matcher_for
from core.errors import InvalidInputError
from core.phonetic import SoundText
from core.timeutil import iso
from indexer.prices import card_product, mismatch_hit, price_timeline, stream_origin
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
            **self.detail,
            "kind": self.kind,
            "offset": round(self.offset, 3),
            "end_offset": round(self.end_offset, 3),
            "at": iso(self.at),
            "text": self.text,
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
            shown: dict[str, Any] = {"action": card.action, "price": card.price, "sku": card.sku}
            shown["product"] = card_product(card, products)
            at = offset_of(card.at)
            marks.append(Mark("card", at, at, card.at, card.title or "", shown))
    for line in catalog.screen_text(stream.id, stream.name, start, end):
        seen = (line.first_offset, line.last_offset, line.first_seen_at, line.text)
        marks.append(Mark("screen", *seen, {"keyframe": line.keyframe_key}))
        for found in matcher.find(line.text, SoundText.of(line.text)):
            detail = {"source_kind": "screen", "term": found.term, "category": found.category}
            marks.append(Mark("banned", *seen, detail))
    for gap in catalog.gaps_between(stream.id, start, end):
        span = (offset_of(gap.starts_at), offset_of(gap.ends_at), gap.starts_at)
        marks.append(Mark("gap", *span, gap.reason or "", {"source_kind": "recording"}))
    for point in price_timeline(stores, stream, start, end).mismatches():
        mismatch = mismatch_hit(point, stream.name)
        mismatch["source_kind"] = mismatch.pop("kind")  # where the price was: said, on screen
        moment = (point.offset, point.offset, point.at, point.text)
        marks.append(Mark("price_mismatch", *moment, mismatch))
    up: dict[str, dict[str, Any]] = {}
    for card in cards:
        if card.at < start:
            product = card_product(card, products)
            if card.action == "removed":
                up.pop(product, None)
            else:
                state = {"title": card.title, "price": card.price, "sku": card.sku}
                up[product] = {"product": product, **state, "at": iso(card.at)}
    marks.sort(key=lambda m: (m.offset, MARK_KINDS.index(m.kind)))
    last = catalog.segments(stream.id)[-1]
    recorded = offset_of(last.starts_at) + last.duration
    return {
        "stream": stream.name,
        "start": iso(start),
        "end": iso(end),
        "recorded_until_offset": round(recorded, 3),  # where the recording ends (so far)
        "cards": list(up.values()),  # the cards up at ``start``
        "marks": [m.to_json() for m in marks],
    }
