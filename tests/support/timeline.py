"""A stream with more than speech on its timeline: the shop talk (``SHOP``), product
cards and chat (stream events, as a connector posts them) and on-screen text (stored as
the OCR stage stores it), around a recent ``t0`` so that events are never too old."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from core.screen import ScreenLine
from core.timeutil import iso, utc_now
from storage.products import parse_products
from storage.stores import Stores
from tests.support.searchdata import SHOP, add_stream

ROOM = "room"
PRODUCTS = [{"name": "羽绒服", "sku": "YR-1"}, {"name": "手镯", "aliases": ["银镯"]}]


def recent_t0() -> datetime:
    """Half an hour ago, to the second (events must not be too old nor in the future)."""
    return (utc_now() - timedelta(minutes=30)).replace(microsecond=0)


def room_events(t0: datetime) -> list[dict[str, Any]]:
    """Card up at 129 (said: 99 at +3 s, a mismatch), a chat question and its answer,
    the card changed to 99 at +14 s."""

    def at(seconds: float) -> str:
        return iso(t0 + timedelta(seconds=seconds))

    return [
        {"id": "c1", "kind": "product_card", "at": at(1), "action": "shown",
         "title": "羽绒服 加厚款", "price": 129, "sku": "YR-1"},
        {"id": "m1", "kind": "chat", "at": at(12), "user": "买家A", "text": "羽绒服包邮吗"},
        {"id": "m2", "kind": "chat", "at": at(13), "user": "主播助理", "text": "包邮！全网第一"},
        {"id": "m3", "kind": "chat", "at": at(16), "user": "买家B", "text": "手镯还有吗"},
        {"id": "c2", "kind": "product_card", "at": at(14), "action": "changed",
         "title": "羽绒服 加厚款", "price": 99, "sku": "YR-1"},
    ]  # fmt: skip


def screen_line(
    t0: datetime, seq: int, text: str, first: float, last: float, **ends: bool
) -> ScreenLine:
    return ScreenLine(
        stream=ROOM,
        segment_seq=seq,
        text=text,
        box=((0.0, 0.0), (100.0, 0.0), (100.0, 40.0), (0.0, 40.0)),
        confidence=0.95,
        first_seen_at=t0 + timedelta(seconds=first),
        last_seen_at=t0 + timedelta(seconds=last),
        first_offset=first,
        last_offset=last,
        keyframe_key=f"test/{ROOM}/{seq}-{first:g}.jpg",
        open_start=ends.get("open_start", False),
        open_end=ends.get("open_end", False),
        segments=(seq,),
    )


def add_room(stores: Stores, tmp: Path, t0: datetime) -> None:
    """The shop talk, its products and its screen text: a price sticker (到手价￥99) seen
    from +7 s across the cut into segment 1, and a banner with a banned term (全网第一)."""
    add_stream(stores, tmp, ROOM, SHOP, t0)
    stream = stores.catalog.get_stream(ROOM)
    stores.catalog.set_products(stream.id, parse_products(PRODUCTS))
    stores.catalog.replace_screen_text(
        stream.id, 0, [screen_line(t0, 0, "到手价￥99", 7.0, 9.5, open_end=True)]
    )
    stores.catalog.replace_screen_text(
        stream.id,
        1,
        [
            screen_line(t0, 1, "到手价￥99", 10.0, 19.5, open_start=True, open_end=True),
            screen_line(t0, 1, "全网第一 品质保证", 11.0, 15.0),
        ],
    )
