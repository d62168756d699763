"""Search: the search index's query over HTTP, each hit with links to its moment."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import Searcher, ServicesDep, log_action
from api.links import moment_links
from api.schemas import HitOut, SearchOut
from core.errors import InvalidInputError
from core.timeutil import parse_iso
from indexer.protocol import MAX_PAGE_SIZE, MAX_QUERY_CHARS, DocKind, SearchQuery
from indexer.query import hit_match_times
from storage.metrics import SEARCH_LATENCY

router = APIRouter(tags=["search"])


def _time(value: str | None) -> datetime | None:
    return parse_iso(value) if value else None


@router.get("/search", response_model=SearchOut)
def search(
    caller: Searcher,
    services: ServicesDep,
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS, description="What was said.")] = "",
    stream: Annotated[str | None, Query(max_length=64)] = None,
    streamer: Annotated[str | None, Query(max_length=128)] = None,
    product: Annotated[str | None, Query(max_length=256)] = None,
    claim: Annotated[str | None, Query(max_length=64)] = None,
    banned: Annotated[
        str | None, Query(max_length=64, description="A banned-word category.")
    ] = None,
    since: Annotated[str | None, Query(max_length=64, description="ISO 8601.")] = None,
    until: Annotated[str | None, Query(max_length=64, description="ISO 8601.")] = None,
    sort: Literal["relevance", "time"] = "relevance",
    kind: Annotated[
        DocKind | None,
        Query(description="Only speech, chat, screen (on-screen text) or card documents."),
    ] = None,
    page: Annotated[int, Query(ge=1, le=1000)] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    sound_alike: bool = True,
) -> SearchOut:
    """Exact and sound-alike matches (sound-alike ranked below and marked), with filters."""
    query = SearchQuery(
        text=q,
        stream=stream,
        streamer=streamer,
        product=product,
        claim=claim,
        banned=banned,
        since=_time(since),
        until=_time(until),
        sort=sort,
        page=page,
        size=size,
        sound_alike=sound_alike,
        kind=kind,
    )
    limit = timedelta(days=services.stores.settings.max_search_range_days)
    if query.since and query.until and query.until - query.since > limit:
        raise InvalidInputError(f"a search covers at most {limit.days} days")
    with SEARCH_LATENCY.time():
        result = services.index.search(query)
    log_action(
        services,
        caller,
        "search",
        {
            "q": q,
            "filters": {
                k: v
                for k, v in {
                    "stream": stream,
                    "streamer": streamer,
                    "product": product,
                    "claim": claim,
                    "banned": banned,
                    "since": since,
                    "until": until,
                    "kind": kind,
                }.items()
                if v
            },
            "total": result.total,
        },
    )
    hits = []
    for hit in result.hits:
        times = hit_match_times(hit)
        moment_url, clip_url = moment_links(hit.stream, times.offset)
        hits.append(
            HitOut(
                stream=hit.stream,
                text=hit.text,
                highlighted=hit.highlighted,
                match=hit.match,
                start=hit.start,
                offset=hit.offset,
                end_offset=hit.end_offset,
                score=hit.score,
                segment=hit.segment,
                products=hit.products,
                claims=hit.claims,
                banned=hit.banned,
                match_offset=times.offset,
                match_end_offset=times.end_offset,
                match_start=times.start,
                match_end=times.end,
                moment_url=moment_url,
                clip_url=clip_url,
                kind=hit.kind,
            )
        )
    return SearchOut(
        query=q,
        total=result.total,
        total_relation=result.total_relation,
        page=page,
        size=size,
        hits=hits,
    )
