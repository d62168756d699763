"""A product's prices on one timeline (said, shown, carded) with price mismatches, what
was promised about a product before an order (claims, prices, cards, chat), and the marks
of the web page's timeline strip."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import EvidenceViewer, Searcher, ServicesDep, log_action
from compliance.alerts import moment_link
from core.errors import InvalidInputError
from core.timeutil import parse_iso
from indexer.prices import mismatch_hit, price_timeline
from indexer.promises import MAX_MINUTES, promises_before
from indexer.timeline_marks import timeline_marks
from storage.blob_keys import check_stream_name

router = APIRouter(tags=["evidence"])
Product = Annotated[str | None, Query(max_length=256, description="A product of the stream.")]


@router.get("/streams/{name}/prices")
def prices(
    name: str,
    caller: Searcher,
    services: ServicesDep,
    product: Product = None,
    start: Annotated[str | None, Query(max_length=64, description="ISO 8601.")] = None,
    end: Annotated[str | None, Query(max_length=64, description="ISO 8601.")] = None,
) -> dict[str, Any]:
    """Every price of the stream's products (or one's) said, shown on screen and on the
    product card, in time order, each with the card's price then; a said or shown price
    the card does not carry is a ``price_mismatch`` hit (明码标价). Audited."""
    stores = services.stores
    stream = stores.catalog.get_stream(check_stream_name(name))
    since = parse_iso(start) if start else None
    until = parse_iso(end) if end else None
    if since and until and until < since:
        raise InvalidInputError("end is before start")
    timeline = price_timeline(stores, stream, since, until)
    points = timeline.for_product(product)
    settings = stores.settings
    log_action(
        services,
        caller,
        "prices.read",
        {"stream": name, "product": product, "start": start, "end": end, "points": len(points)},
    )
    return {
        "stream": stream.name,
        "product": product,
        "prices": [
            {**p.to_json(), "link": moment_link(settings, stream.name, p.offset)} for p in points
        ],
        "price_mismatches": [
            {**mismatch_hit(p, stream.name), "link": moment_link(settings, stream.name, p.offset)}
            for p in points
            if p.mismatch
        ],
    }


@router.get("/promises")
def promises(
    caller: EvidenceViewer,
    services: ServicesDep,
    stream: Annotated[str, Query(max_length=64, description="The stream the order was in.")],
    product: Annotated[str, Query(max_length=256, description="The product ordered.")],
    at: Annotated[str, Query(max_length=64, description="The order's time (ISO 8601).")],
    minutes: Annotated[float, Query(gt=0, le=MAX_MINUTES)] = 30,
) -> dict[str, Any]:
    """Every claim, price, card state and chat exchange about ``product`` in the
    ``minutes`` before the order at ``at``, each with its moment link. Audited."""
    stores = services.stores
    found = stores.catalog.get_stream(check_stream_name(stream))
    order_at = parse_iso(at)
    answer = promises_before(stores, found, product, order_at, minutes)
    log_action(
        services,
        caller,
        "promises.read",
        {
            "stream": stream,
            "product": product,
            "at": at,
            "minutes": minutes,
            "items": len(answer.items),
        },
    )
    return answer.to_json()


@router.get("/streams/{name}/timeline")
def timeline(
    name: str,
    caller: EvidenceViewer,
    services: ServicesDep,
    start: Annotated[str, Query(max_length=64, description="ISO 8601.")],
    end: Annotated[str, Query(max_length=64, description="ISO 8601; at most 2 h after start.")],
) -> dict[str, Any]:
    """Marks between ``start`` and ``end`` for the web page's timeline strip: banned terms
    (said, in the chat, on screen), chat, product cards, on-screen text, gaps and price
    mismatches, by offset; and the cards up at ``start``. Audited."""
    stores = services.stores
    stream = stores.catalog.get_stream(check_stream_name(name))
    found = timeline_marks(stores, stream, parse_iso(start), parse_iso(end))
    log_action(
        services,
        caller,
        "timeline.read",
        {"stream": name, "start": start, "end": end, "marks": len(found["marks"])},
    )
    return found
