"""What was promised about a product before an order: every claim, price, card state and
chat exchange about it in the N minutes before the order, each with its moment link.

A claim is about the product its sentence names or is attributed to (indexer/documents.py);
a price as on the price timeline (indexer/prices.py); a chat message when it names the
product, or asks about a claim (包邮吗?) while the product is the one presented (its card
up, or named last within the focus window).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from compliance.alerts import moment_link
from core.errors import InvalidInputError
from core.phonetic import SoundText
from core.timeutil import iso
from indexer.documents import find_claims, find_mentions, product_phrases
from indexer.prices import (
    PricePoint,
    card_price_at,
    mismatch_hit,
    price_timeline,
    said_docs,
    stream_origin,
)
from indexer.timeline_docs import text_doc
from storage.events import EventService
from storage.models import Stream
from storage.stores import Stores

MAX_MINUTES = 24 * 60


@dataclass(frozen=True)
class Promises:
    stream: str
    product: str
    order_at: datetime
    since: datetime
    items: list[dict[str, Any]]
    card_at_order: dict[str, Any] | None
    mismatches: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "product": self.product,
            "at": iso(self.order_at),
            "since": iso(self.since),
            "card_at_order": self.card_at_order,
            "items": self.items,
            "price_mismatches": self.mismatches,
        }


def promises_before(
    stores: Stores, stream: Stream, product: str, order_at: datetime, minutes: float
) -> Promises:
    if not 0 < minutes <= MAX_MINUTES:
        raise InvalidInputError(f"minutes must be between 1 and {MAX_MINUTES}")
    if not product.strip():
        raise InvalidInputError("name the product (product=...)")
    settings = stores.settings
    try:
        since = order_at - timedelta(minutes=minutes)
        end = order_at + timedelta(microseconds=1)  # the order's own moment counts
        focus_window = timedelta(seconds=settings.product_focus_seconds)
        earliest = since - focus_window
    except OverflowError:
        raise InvalidInputError("the order's time is too close to the calendar's edge") from None
    origin = stream_origin(stores, stream)

    def link(offset: float) -> str:
        return moment_link(settings, stream.name, offset)

    # The focus can be named before the window: read the utterances from a focus earlier.
    docs = said_docs(stores, stream, earliest, end)
    timeline = price_timeline(stores, stream, None, end, docs)
    items: list[dict[str, Any]] = []
    named_at: list[tuple[datetime, str]] = []
    for doc in docs:
        at = datetime.fromisoformat(doc.start.replace("Z", "+00:00"))
        named_at += [(at, m.key) for m in doc.products if m.match != "inferred"]
        if at < since:
            continue
        about = [c for c in doc.claims if c.product == product]
        for claim in about:
            items.append(
                {
                    "type": "claim",
                    "kind": "speech",
                    "claim": claim.key,
                    "heard": claim.heard,
                    "match": claim.match,
                    "inferred": claim.inferred,
                    "text": doc.text,
                    "at": iso(at + timedelta(seconds=claim.offset - doc.offset)),
                    "offset": round(claim.offset, 3),
                    "link": link(claim.offset),
                }
            )
    points = [p for p in timeline.for_product(product) if since <= p.at < end]
    items += [_price_item(p, link) for p in points]
    cards = [p for p in timeline.points if p.source == "card"]
    phrases = product_phrases(stores.catalog.products(stream.id))
    names = {key for key, _ in phrases if key == product} or {product}
    chats = EventService(stores).events(stream.id, since, end, ["chat"])
    for event in chats:
        text = event.text or ""
        offset = (event.at - origin).total_seconds() if origin else 0.0
        probe = text_doc("chat", "", stream.name, None, -1, text, event.at, offset, offset, {})
        heard = SoundText.of(text)
        mentions = find_mentions(probe, heard, [p for p in phrases if p[0] in names])
        claims = find_claims(probe, heard)
        concerns = bool(mentions) or product in text
        if not concerns and claims:
            concerns = _presented(product, event.at, cards, named_at, focus_window)
        if not concerns:
            continue
        items.append(
            {
                "type": "chat",
                "kind": "chat",
                "user": event.user,
                "text": text,
                "claims": sorted({c.key for c in claims}),
                "event": event.id,
                "at": iso(event.at),
                "offset": round(offset, 3),
                "link": link(offset),
            }
        )
    items.sort(key=lambda item: (item["offset"], item["type"]))
    card = card_price_at(cards, product, order_at)
    up = [c for c in cards if c.product == product and c.at <= order_at]
    card_at_order = (
        {
            "price": card,
            "action": up[-1].detail.get("action"),
            "sku": up[-1].detail.get("sku"),
            "at": iso(up[-1].at),
        }
        if up
        else None
    )
    mismatches = [mismatch_hit(p, stream.name) for p in points if p.mismatch]
    return Promises(stream.name, product, order_at, since, items, card_at_order, mismatches)


def _presented(
    product: str,
    at: datetime,
    cards: list[PricePoint],
    named_at: list[tuple[datetime, str]],
    focus_window: timedelta,
) -> bool:
    """Whether ``product`` is the one presented at ``at``: its card up, or named last."""
    up = [c for c in cards if c.at <= at]
    if up and up[-1].price is not None and up[-1].product == product:
        return True
    before = [(when, key) for when, key in named_at if when <= at]
    return bool(before) and before[-1][1] == product and at - before[-1][0] <= focus_window


def _price_item(point: PricePoint, link: Any) -> dict[str, Any]:
    kind = {"said": "speech", "shown": "screen", "card": "card"}[point.source]
    return {
        "type": "card" if point.source == "card" else "price",
        "kind": kind,
        **point.to_json(),
        "link": link(point.offset),
    }
