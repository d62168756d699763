"""A product's prices on one timeline: said (transcripts, numbers folded), shown (on-screen
text) and carded (product_card events); a said or shown price that the card showing at
that moment does not carry is a ``price_mismatch`` compliance hit.

Which product a price is about: a said price, the product its sentence names (else the
one a claim of it is about, else the product named last within
``product_focus_seconds``, as claims are attributed in indexer/documents.py); a shown
price, the product its line names, else the product whose card is up (the one shown or
changed last), else the one in focus; a card, the stream product whose SKU, name or
alias it carries, else its own title.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from compliance.matcher import load_lexicon, matcher_for
from compliance.price_rules import (
    PRICE_MISMATCH,
    PRICE_MISMATCH_SEVERITY,
    PRICE_MISMATCH_SOURCE,
    agrees,
    price_values,
)
from core.events import StreamEvent
from core.phonetic import SoundText
from core.timeutil import iso
from core.transcript import SegmentTranscript, carried_words, indexed_until, merge_parts
from indexer.documents import (
    ProductFocus,
    UtteranceDoc,
    find_mentions,
    product_phrases,
    utterance_docs,
)
from indexer.timeline_docs import text_doc
from storage.events import EventService
from storage.models import Product, Stream
from storage.stores import Stores

PriceSource = Literal["said", "shown", "card"]


@dataclass(frozen=True)
class PricePoint:
    """One price of a product at a moment, and the card's price then."""

    product: str
    source: PriceSource
    price: float | None  # a card removed: None
    prices: tuple[float, ...]  # every price its text names (said, shown)
    at: datetime
    offset: float
    text: str
    card_price: float | None = None  # the card showing then (said, shown)
    mismatch: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "source": self.source,
            "price": self.price,
            "prices": list(self.prices),
            "at": iso(self.at),
            "offset": round(self.offset, 3),
            "text": self.text,
            "card_price": self.card_price,
            "mismatch": self.mismatch,
            **self.detail,
        }


@dataclass(frozen=True)
class PriceTimeline:
    points: list[PricePoint]

    def for_product(self, product: str | None) -> list[PricePoint]:
        return [p for p in self.points if product is None or p.product == product]

    def mismatches(self, product: str | None = None) -> list[PricePoint]:
        return [p for p in self.for_product(product) if p.mismatch]


def mismatch_hit(point: PricePoint, stream: str) -> dict[str, Any]:
    """A price mismatch as a compliance hit (the fields a banned-word hit has)."""
    return {
        "stream": stream,
        "term": PRICE_MISMATCH,
        "category": PRICE_MISMATCH,
        "severity": PRICE_MISMATCH_SEVERITY,
        "source": PRICE_MISMATCH_SOURCE,
        "kind": "speech" if point.source == "said" else "screen",
        "product": point.product,
        "price": point.price,
        "card_price": point.card_price,
        "heard": point.text,
        "at": iso(point.at),
        "offset": round(point.offset, 3),
    }


def stream_origin(stores: Stores, stream: Stream) -> datetime | None:
    first = stores.catalog.first_segment(stream.id)
    return first.starts_at if first is not None else None


def card_product(event: StreamEvent, products: Sequence[Product]) -> str:
    for product in products:
        if event.sku and product.sku == event.sku:
            return product.name
    title = event.title or ""
    for product in products:
        names = [product.name, *json.loads(product.aliases or "[]")]
        if any(name and name in title for name in names):
            return product.name
    return title or event.sku or "?"


def said_docs(
    stores: Stores, stream: Stream, start: datetime | None, end: datetime | None
) -> list[UtteranceDoc]:
    """The stream's utterances as the indexer builds them (mentions, claims, banned
    words), those that begin within [start, end) (open ends: all)."""
    catalog, settings = stores.catalog, stores.settings
    products = catalog.products(stream.id)
    seqs = None
    if start is not None or end is not None:
        # Only the segments of the range (and one either side: an utterance carried over).
        near = [
            seg.seq
            for seg in catalog.segments(stream.id)
            if (end is None or seg.starts_at <= end)
            and (start is None or seg.starts_at + timedelta(seconds=seg.duration) >= start)
        ]
        seqs = {n for seq in near for n in (seq - 1, seq, seq + 1)}
    rows = catalog.transcripts(stream.id, seqs)
    bodies = list(
        merge_parts(SegmentTranscript.from_json(json.loads(row.body)) for row in rows).values()
    )
    matcher = matcher_for(load_lexicon(settings.lexicon_path))
    docs: list[UtteranceDoc] = []
    focus = None
    for position, body in enumerate(bodies):
        previous = bodies[position - 1] if position > 0 else None
        following = bodies[position + 1] if position + 1 < len(bodies) else None
        built = utterance_docs(
            body,
            indexed_until(body, following),
            products,
            streamer=stream.streamer,
            banned_words=matcher,
            leading=carried_words(previous, body),
            focus=focus,
            focus_seconds=settings.product_focus_seconds,
        )
        for doc in built:
            named = [m for m in doc.products if m.match != "inferred"]
            if named:
                last = max(named, key=lambda m: m.end_offset)
                focus = ProductFocus(last.key, last.end_offset)
        docs += built
    return [d for d in docs if _within(_start(d), start, end)]


def _start(doc: UtteranceDoc) -> datetime:
    return datetime.fromisoformat(doc.start.replace("Z", "+00:00"))


def _within(at: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or at >= start) and (end is None or at < end)


def price_timeline(
    stores: Stores,
    stream: Stream,
    start: datetime | None = None,
    end: datetime | None = None,
    docs: Sequence[UtteranceDoc] | None = None,
) -> PriceTimeline:
    """Every price of every product of ``stream`` in [start, end), in time order."""

    settings = stores.settings
    origin = stream_origin(stores, stream)
    products = stores.catalog.products(stream.id)
    focus_window = timedelta(seconds=settings.product_focus_seconds)
    # Cards from the stream's start: the card showing at ``start`` matters too.
    events = EventService(stores).events(stream.id, None, end, ["product_card"])
    cards = [
        PricePoint(
            product=card_product(e, products),
            source="card",
            price=None if e.action == "removed" else e.price,
            prices=(),
            at=e.at,
            offset=(e.at - origin).total_seconds() if origin else 0.0,
            text=e.title or "",
            detail={"action": e.action, "sku": e.sku, "event": e.id},
        )
        for e in events
    ]
    said_source = list(docs) if docs is not None else said_docs(stores, stream, start, end)
    points: list[PricePoint] = [c for c in cards if _within(c.at, start, end)]
    focus: tuple[str, datetime] | None = None
    for doc in said_source:
        at = _start(doc)
        named = [m.key for m in doc.products if m.match != "inferred"]
        inferred = [m.key for m in doc.products if m.match == "inferred"]
        if named:
            focus = (named[-1], at)
        values = price_values(doc.text)
        if not values:
            continue
        product: str | None = next(iter(named + inferred), None)
        if product is None and focus is not None and at - focus[1] <= focus_window:
            product = focus[0]
        if product is None:
            continue
        points.append(
            PricePoint(product, "said", values[-1], tuple(values), at, doc.offset, doc.text)
        )
    phrases = product_phrases(products)
    for line in stores.catalog.screen_text(stream.id, stream.name, start, end):
        values = price_values(line.text)
        if not values:
            continue
        probe = text_doc(
            "screen",
            "",
            stream.name,
            None,
            line.segment_seq,
            line.text,
            line.first_seen_at,
            line.first_offset,
            line.last_offset,
            {},
        )
        found = find_mentions(probe, SoundText.of(line.text), phrases)
        shown = found[0].key if found else _card_up(cards, line.first_seen_at)
        if shown is None:
            continue
        points.append(
            PricePoint(
                shown,
                "shown",
                values[-1],
                tuple(values),
                line.first_seen_at,
                line.first_offset,
                line.text,
                detail={"last_seen": iso(line.last_seen_at), "keyframe": line.keyframe_key},
            )
        )
    checked = [_check(point, cards) for point in points]
    return PriceTimeline(sorted(checked, key=lambda p: (p.at, p.source, p.product)))


def _card_up(cards: Sequence[PricePoint], at: datetime) -> str | None:
    """The product whose card was shown or changed last by ``at`` (and not removed)."""
    up = [c for c in cards if c.at <= at]
    if not up or up[-1].price is None:
        return None
    return up[-1].product


def card_price_at(cards: Sequence[PricePoint], product: str, at: datetime) -> float | None:
    """The product card's price at ``at`` (None: no card, or removed)."""
    before = [c for c in cards if c.product == product and c.at <= at]
    return before[-1].price if before else None


def _check(point: PricePoint, cards: Sequence[PricePoint]) -> PricePoint:
    if point.source == "card":
        return point
    card = card_price_at(cards, point.product, point.at)
    if card is None:
        return point
    return replace(point, card_price=card, mismatch=not agrees(list(point.prices), card))
