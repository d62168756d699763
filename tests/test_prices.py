"""Prices said, shown and carded on one timeline, price_mismatch (明码标价), and what was
promised before an order: events posted through the real API by a connector, screen text
stored through the catalog as the OCR stage stores it, transcripts stored the real way."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from compliance.price_rules import PRICE_MISMATCH, price_values
from core.timeutil import iso, utc_now
from indexer.factory import open_search_index
from indexer.service import Indexer
from storage.stores import Stores
from tests.support.apiserver import running_api
from tests.support.cli import cli_in_process
from tests.support.timeline import ROOM, add_room, recent_t0, room_events, screen_line


def test_prices_are_read_from_text_with_numbers_folded() -> None:
    assert price_values("今天这款羽绒服只要九十九元") == [99.0]
    assert price_values("原价一百九十九，现在只要九十九") == [199.0, 99.0]
    assert price_values("九块九包邮") == [9.9]
    assert price_values("到手价￥129.00") == [129.0]
    assert price_values("第一次买三件") == []
    assert price_values("全网最低价假一赔十，买一送一") == []  # 假1赔10 is no price
    assert price_values("价格：九十九") == [99.0]


def test_prices_mismatches_and_promises_over_http(stores: Stores, tmp_path: Path) -> None:
    t0 = recent_t0()
    add_room(stores, tmp_path, t0)
    with running_api(stores) as api:
        with api.client("connector") as connector:
            posted = connector.post(f"/api/v1/streams/{ROOM}/events", json=room_events(t0))
            assert posted.status_code == 200 and posted.json()["accepted"] == 5, posted.text
        index = open_search_index(stores)
        Indexer(stores, index).index_pending()  # as the indexer stage does
        index.close()
        with api.client("reviewer") as reviewer:
            answer = reviewer.get(f"/api/v1/streams/{ROOM}/prices", params={"product": "羽绒服"})
            assert answer.status_code == 200, answer.text
            prices = answer.json()
            timeline = [
                (p["source"], p["price"], p["card_price"], p["mismatch"]) for p in prices["prices"]
            ]
            assert timeline == [
                ("card", 129.0, None, False),
                ("said", 99.0, 129.0, True),  # 只要九十九元 while the card says 129
                ("shown", 99.0, 129.0, True),  # the sticker, across the cut: one record
                ("card", 99.0, None, False),
            ]
            said, shown = prices["price_mismatches"]
            assert (said["kind"], shown["kind"]) == ("speech", "screen")
            assert said["category"] == PRICE_MISMATCH and "明码标价" in said["source"]
            assert said["at"] == iso(t0 + timedelta(seconds=3.0))
            assert said["link"].endswith(f"#stream={ROOM}&t=3.0")
            assert shown["offset"] == 7.0 and shown["heard"] == "到手价￥99"

            order_at = iso(t0 + timedelta(seconds=30))
            query = {"stream": ROOM, "product": "羽绒服", "at": order_at, "minutes": 5}
            promised = reviewer.get("/api/v1/promises", params=query)
            assert promised.status_code == 200, promised.text
            body = promised.json()
            items = body["items"]
            assert [i["event"] for i in items if i["type"] == "chat"] == ["m1", "m2"]
            claims = {i["claim"] for i in items if i["type"] == "claim"}
            assert {"price", "returns", "free_shipping"} <= claims
            assert [i["price"] for i in items if i["type"] == "card"] == [129.0, 99.0]
            assert [i["source"] for i in items if i["type"] == "price"] == ["said", "shown"]
            assert all(
                i["link"].startswith("http") and f"#stream={ROOM}&t=" in i["link"] for i in items
            )
            assert [i["at"] for i in items] == sorted(i["at"] for i in items)
            assert body["card_at_order"]["price"] == 99.0
            assert len(body["price_mismatches"]) == 2
            # A shorter window before a later order leaves the early moments out.
            later = {**query, "at": iso(t0 + timedelta(minutes=4)), "minutes": 3.75}  # from +15 s
            kept = reviewer.get("/api/v1/promises", params=later).json()["items"]
            assert {i["type"] for i in kept} == {"claim"}  # 下单就包邮买一送一 at +21 s
            assert min(i["at"] for i in kept) >= iso(t0 + timedelta(seconds=15))

            screen = reviewer.get("/api/v1/search", params={"q": "九十九", "kind": "screen"})
            assert [(h["kind"], h["text"]) for h in screen.json()["hits"]] == [
                ("screen", "到手价￥99")
            ]
            assert (
                reviewer.get("/api/v1/search", params={"q": "包邮", "kind": "x"}).status_code == 422
            )
            bad = reviewer.get("/api/v1/promises", params={**query, "at": "2026-11-20T12:00"})
            assert bad.status_code == 400 and "time zone" in bad.json()["error"]
            assert (
                reviewer.get("/api/v1/promises", params={**query, "minutes": 0}).status_code == 422
            )
            window = {
                "start": iso(t0 + timedelta(seconds=5)),
                "end": iso(t0 + timedelta(seconds=60)),
            }
            strip = reviewer.get(f"/api/v1/streams/{ROOM}/timeline", params=window).json()
            assert [c["price"] for c in strip["cards"]] == [129.0]  # up since +1 s
            marks = {(m["kind"], m.get("source_kind")) for m in strip["marks"]}
            assert {
                ("banned", "speech"),
                ("banned", "chat"),
                ("banned", "screen"),
                ("chat", None),
                ("card", None),
                ("screen", None),
                ("price_mismatch", "screen"),  # the sticker at +7 s: the card said 129
            } <= marks
            too_long = {**window, "end": iso(t0 + timedelta(hours=3))}
            assert (
                reviewer.get(f"/api/v1/streams/{ROOM}/timeline", params=too_long).status_code == 400
            )
            edge = {**query, "at": "0001-01-01T00:00:00Z"}
            assert reviewer.get("/api/v1/promises", params=edge).status_code == 400
            missing = reviewer.get("/api/v1/streams/nope/prices")
            assert missing.status_code == 404
        with api.client("compliance") as compliance:
            assert compliance.get(f"/api/v1/streams/{ROOM}/prices").status_code == 200
            assert compliance.get("/api/v1/promises", params=query).status_code == 403
            # Compliance scans the chat and the screen too: a banned term on a banner is a hit.
            report = compliance.get("/api/v1/compliance/report", params={"stream": ROOM}).json()
            written = [
                (h["kind"], h["term"], h["text"]) for h in report["hits"] if h["kind"] != "speech"
            ]
            assert written == [
                ("screen", "全网第一", "全网第一 品质保证"),
                ("chat", "全网第一", "包邮！全网第一"),
            ]
            assert report["by_kind"]["screen"] == report["by_kind"]["chat"] == 1
        with api.client("connector") as connector:
            assert connector.get(f"/api/v1/streams/{ROOM}/prices").status_code == 403
        with api.client("admin") as admin:
            actions = [e["action"] for e in admin.get("/api/v1/audit").json()]
            assert {"prices.read", "promises.read", "timeline.read"} <= set(actions)

    result = cli_in_process(stores.settings.home, "prices", "--stream", ROOM, "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert {p["product"] for p in printed["prices"]} == {"羽绒服"}
    assert len(printed["price_mismatches"]) == 2
    unknown = cli_in_process(stores.settings.home, "prices", "--stream", "nope")
    assert unknown.exit_code == 2 and "Traceback" not in unknown.output


def test_banned_terms_in_live_chat_and_on_screen_raise_alerts(
    stores: Stores, tmp_path: Path
) -> None:
    """A banned term written in the chat or shown on screen moments ago is alerted like
    one said, its payload naming the kind; indexing it again alerts no second time."""
    from sqlalchemy import select

    from compliance.alerts import BANNED_WORD_EVENT
    from storage.events import EventService
    from storage.models import Alert

    t0 = (utc_now() - timedelta(seconds=60)).replace(microsecond=0)
    add_room(stores, tmp_path, t0)
    stream = stores.catalog.get_stream(ROOM)
    EventService(stores).ingest_values(stream.id, room_events(t0))
    banner = screen_line(t0, 2, "国家级面料", 25.0, 29.0)
    stores.catalog.replace_screen_text(stream.id, 2, [banner])
    index = open_search_index(stores)
    indexer = Indexer(stores, index)
    indexer.index_pending()
    Indexer(stores, index).index_timeline()  # a fresh process looks at the top segment again
    index.close()

    def written() -> list[tuple[str, str, float]]:
        with stores.catalog.session() as s:
            alerts = s.scalars(select(Alert).where(Alert.kind == BANNED_WORD_EVENT)).all()
            payloads = [json.loads(a.payload) for a in alerts]
        return sorted((p["kind"], p["term"], p["offset"]) for p in payloads if "kind" in p)

    # One alert per term within 3 s on a stream, whatever its kind: the banner's 全网第一
    # (+11 s) is the chat's (+13 s).
    assert written() == [("chat", "全网第一", 13.0), ("screen", "国家级", 25.0)]
