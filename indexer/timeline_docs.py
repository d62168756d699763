"""Search documents of what was not said: chat, product cards (stream events) and
on-screen text (OCR), with the same tokens, mentions, claims and banned words as an
utterance, so one query finds them all (``kind`` tells them apart).

Such a text has no word times: it is one word from its first to its last moment (an
event is a moment; a screen line is seen from its first to its last sampled frame), so a
banned term on a price sticker is timed by the sticker. Ids are deterministic: an event's
is its stream and event id (events are written once), a screen line's its segment and
place in it (a segment read again replaces its lines).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from compliance.matcher import BannedWordMatcher
from core.events import StreamEvent
from core.phonetic import SoundText
from core.screen import ScreenLine, same_text
from core.text import search_form
from core.timeutil import iso
from core.transcript import UtteranceWord
from indexer.claims import ClaimType
from indexer.documents import (
    FuzzyMatching,
    UtteranceDoc,
    banned_json,
    find_claims,
    find_mentions,
    product_phrases,
)
from indexer.protocol import DocKind
from storage.models import Product

#: Event kinds indexed, and the document kind each becomes.
EVENT_DOC_KINDS: dict[str, DocKind] = {"chat": "chat", "product_card": "card"}


def text_doc(
    kind: DocKind,
    doc_id: str,
    stream: str,
    streamer: str | None,
    segment: int,
    text: str,
    at: datetime,
    offset: float,
    end_offset: float,
    detail: dict[str, Any],
    products: Sequence[Product] = (),
    claim_types: Sequence[ClaimType] | None = None,
    banned_words: BannedWordMatcher | None = None,
    fuzzy: FuzzyMatching | None = None,
) -> UtteranceDoc:
    """A document of a text seen or written (not said) from ``offset`` to ``end_offset``."""
    end = iso(at + timedelta(seconds=end_offset - offset))
    doc = UtteranceDoc(
        id=doc_id,
        stream=stream,
        streamer=streamer,
        segment=segment,
        number=0,
        text=text,
        start=iso(at),
        offset=offset,
        end_offset=end_offset,
        words=[UtteranceWord(text, iso(at), end, offset, end_offset, 1.0)],
        search=search_form(text),
        kind=kind,
        detail=detail,
    )
    heard = doc.heard = SoundText.of(text)
    doc.products = find_mentions(doc, heard, product_phrases(products), fuzzy=fuzzy)
    doc.claims = find_claims(doc, heard, claim_types, fuzzy)
    if banned_words is not None:
        doc.banned = [banned_json(doc, hit) for hit in banned_words.find(text, heard)]
    return doc


def event_text(event: StreamEvent) -> str:
    """What an event says: a chat's text; a card's title and price (its price in the
    search form's digits, so 九十九元 finds it); empty for other kinds."""
    if event.kind == "chat":
        return event.text or ""
    if event.kind == "product_card":
        price = f" {event.price:g}元" if event.price is not None else ""
        return f"{event.title or event.sku or ''}{price}".strip()
    return ""


def event_doc(
    event: StreamEvent,
    stream: str,
    streamer: str | None,
    origin: datetime,
    products: Sequence[Product] = (),
    claim_types: Sequence[ClaimType] | None = None,
    banned_words: BannedWordMatcher | None = None,
    fuzzy: FuzzyMatching | None = None,
) -> UtteranceDoc | None:
    """The document of a chat message or a product card (None: nothing to index)."""
    kind = EVENT_DOC_KINDS.get(event.kind)
    text = event_text(event)
    if kind is None or not text:
        return None
    offset = round((event.at - origin).total_seconds(), 3)
    detail: dict[str, Any] = {"event": event.id}
    for name in ("user", "action", "title", "price", "sku"):
        value = getattr(event, name)
        if value is not None:
            detail[name] = value
    return text_doc(
        kind,
        f"{stream}:event:{event.id}",
        stream,
        streamer,
        -1,  # events belong to no segment: they are batched on their own
        text,
        event.at,
        offset,
        offset,
        detail,
        products,
        claim_types,
        banned_words,
        fuzzy,
    )


def screen_docs(
    stream: str,
    streamer: str | None,
    segment: int,
    lines: Sequence[ScreenLine],
    products: Sequence[Product] = (),
    claim_types: Sequence[ClaimType] | None = None,
    banned_words: BannedWordMatcher | None = None,
    fuzzy: FuzzyMatching | None = None,
) -> list[UtteranceDoc]:
    """The documents of a segment's screen lines (``lines``: its own and the previous
    segment's records). A line still on screen from the previous segment is that
    segment's document, so a sticker shown for a minute is one hit, not six."""
    before = {
        same_text(line.text) for line in lines if line.segment_seq == segment - 1 and line.open_end
    }
    docs = []
    own = [line for line in lines if line.segment_seq == segment]
    for number, line in enumerate(own):
        if line.open_start and same_text(line.text) in before:
            continue
        detail = {
            "keyframe": line.keyframe_key,
            "last_seen": iso(line.last_seen_at),
            "confidence": round(line.confidence, 3),
        }
        docs.append(
            text_doc(
                "screen",
                f"{stream}:{segment:08d}:screen:{number:03d}",
                stream,
                streamer,
                segment,
                line.text,
                line.first_seen_at,
                line.first_offset,
                line.last_offset,
                detail,
                products,
                claim_types,
                banned_words,
                fuzzy,
            )
        )
    return docs
