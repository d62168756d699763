"""Stream events: connectors post a stream's chat, product cards and orders; reviewers
read them back by time and kind (docs/events.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from api.deps import Caller, EventConnector, EvidenceViewer, Services, ServicesDep, log_action
from api.schemas import EventOut, EventProblemOut, EventsIngestOut
from core.errors import InvalidInputError
from core.events import EVENT_KINDS, STORED_KINDS, StreamEvent
from core.timeutil import iso, parse_iso
from storage.blob_keys import check_stream_name
from storage.events import EventService, IngestReport

router = APIRouter(tags=["events"])

_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "kind", "at"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string", "enum": list(EVENT_KINDS)},
        "at": {"type": "string", "format": "date-time"},
    },
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "array", "items": _EVENT_SCHEMA}},
        },
    }
}
MAX_READ = 10_000


@router.post("/streams/{name}/events", response_model=EventsIngestOut, openapi_extra=_BODY)
async def post_events(
    name: str, request: Request, caller: EventConnector, services: ServicesDep
) -> EventsIngestOut:
    """Take a stream's events: NDJSON (one JSON object a line) or a JSON array. Each
    event is taken or refused on its own; an id seen before is a duplicate, not a second
    event. Taken events are sealed into the stream's chain within a batch window."""
    body = await request.body()
    return await run_in_threadpool(_ingest, name, body, caller, services)


def _ingest(name: str, body: bytes, caller: Caller, services: Services) -> EventsIngestOut:
    stores = services.stores
    stream = stores.catalog.get_stream(check_stream_name(name))
    events = EventService(stores, services.event_rates)
    report = events.ingest_body(stream.id, body)
    events.seal(stream.id, stream.name)  # windows that closed meanwhile (a thread seals too)
    log_action(
        services,
        caller,
        "events.ingest",
        {
            "stream": name,
            "accepted": report.accepted,
            "duplicate": report.duplicate,
            "refused": report.refused,
        },
    )
    return ingest_out(report)


def ingest_out(report: IngestReport) -> EventsIngestOut:
    return EventsIngestOut(
        accepted=report.accepted,
        duplicate=report.duplicate,
        refused=report.refused,
        problems=[
            EventProblemOut(line=p.line, id=p.id, status=p.status, reason=p.reason, error=p.error)
            for p in report.problems
        ],
    )


@router.get("/streams/{name}/events", response_model=list[EventOut])
def get_events(
    name: str,
    caller: EvidenceViewer,
    services: ServicesDep,
    start: Annotated[str | None, Query(description="From this time (ISO 8601), inclusive.")] = None,
    end: Annotated[str | None, Query(description="Up to this time (ISO 8601), exclusive.")] = None,
    kind: Annotated[list[str] | None, Query(description="Only these kinds.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_READ)] = 1000,
) -> list[EventOut]:
    """A stream's events in [start, end), by their time; audited as a read of evidence."""
    stores = services.stores
    stream = stores.catalog.get_stream(check_stream_name(name))
    since = _time("start", start)
    until = _time("end", end)
    for one in kind or []:
        if one not in STORED_KINDS:
            raise InvalidInputError(f"unknown kind {one!r}: one of {', '.join(STORED_KINDS)}")
    found = EventService(stores).events(stream.id, since, until, kind, limit)
    log_action(
        services,
        caller,
        "events.read",
        {"stream": name, "start": start, "end": end, "kind": kind, "count": len(found)},
    )
    first = stores.catalog.first_segment(stream.id)
    origin = first.starts_at if first is not None else None
    return [event_out(e, origin) for e in found]


def _time(what: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_iso(text)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{what}: {exc}") from None


def event_out(event: StreamEvent, origin: datetime | None) -> EventOut:
    return EventOut(
        id=event.id,
        kind=event.kind,
        at=event.at_text,
        at_utc=iso(event.at),
        offset=round((event.at - origin).total_seconds(), 3) if origin else None,
        received_at=iso(event.received_at),
        late=event.late,
        batch=event.batch,
        text=event.text,
        user=event.user,
        action=event.action,
        title=event.title,
        price=event.price,
        sku=event.sku,
        link=event.link,
        raw=event.raw,
        until=iso(event.until) if event.until else None,
    )
