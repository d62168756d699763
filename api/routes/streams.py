"""Streams: start and stop recording, list them with their status, set products."""

from __future__ import annotations

import json

from fastapi import APIRouter

from api.deps import (
    Caller,
    ServicesDep,
    StreamManager,
    StreamReader,
    StreamVerifier,
    log_action,
    may_see_secrets,
)
from api.schemas import ProductIn, ProductOut, ReceiptsIn, StreamOut, StreamStart, VerifyOut
from core.jobs import TRANSCRIPTION_JOBS
from core.redact import redact_source, redact_text
from core.timeutil import iso, utc_now
from evidence.verify import verify_stream
from recorder.wanted import start_wanted, stop_wanted
from storage.blob_keys import check_stream_name
from storage.catalog import StreamSummary
from storage.models import Stream
from storage.products import parse_products
from storage.receipts import receipts_of
from storage.stores import Stores

router = APIRouter(tags=["streams"])


def stream_out(
    stores: Stores, caller: Caller, stream: Stream, summary: StreamSummary | None = None
) -> StreamOut:
    """A stream as ``caller`` may see it: its source and last error raw for admins,
    redacted (no credentials, query or stream key) for every other role."""
    if summary is None:
        summary = stores.catalog.stream_summaries(TRANSCRIPTION_JOBS, [stream.id])[stream.id]
    source, last_error = stream.source, stream.last_error
    if not may_see_secrets(caller):
        source = redact_source(source) if source else source
        last_error = redact_text(last_error, stream.source) if last_error else last_error
    return StreamOut(
        name=stream.name,
        status=stream.status,
        wanted=stream.wanted,
        source=source,
        streamer=stream.streamer,
        language=stream.language,
        segments=summary.segments,
        recorded_seconds=round(summary.seconds, 3),
        gaps=summary.gaps,
        transcription_backlog=summary.backlog,
        first_segment_at=iso(summary.first_segment_at) if summary.first_segment_at else None,
        last_error=last_error,
        recorded_by=stream.recorder
        if stream.recorder_lease_until and stream.recorder_lease_until > utc_now()
        else None,
    )


@router.get("/streams", response_model=list[StreamOut])
def list_streams(caller: StreamReader, services: ServicesDep) -> list[StreamOut]:
    summaries = services.stores.catalog.stream_summaries(TRANSCRIPTION_JOBS)
    return [
        stream_out(services.stores, caller, s, summaries.get(s.id))
        for s in services.stores.catalog.list_streams()
    ]


@router.get("/streams/{name}", response_model=StreamOut)
def get_stream(name: str, caller: StreamReader, services: ServicesDep) -> StreamOut:
    stream = services.stores.catalog.get_stream(check_stream_name(name))
    return stream_out(services.stores, caller, stream)


@router.post("/streams", response_model=StreamOut, status_code=201)
def start_recording(body: StreamStart, caller: StreamManager, services: ServicesDep) -> StreamOut:
    """Record a live source: a recorder stage (or `serve`) picks it up within a second."""
    stores = services.stores
    stream = start_wanted(
        stores,
        body.name,
        body.source,
        streamer=body.streamer,
        language=body.language,
        products=parse_products([p.model_dump() for p in body.products]),
    )
    log_action(
        services,
        caller,
        "stream.start",
        {"stream": stream.name, "source": redact_source(body.source.strip())},
    )
    return stream_out(stores, caller, stream)


@router.post("/streams/{name}/stop", response_model=StreamOut)
def stop_recording(name: str, caller: StreamManager, services: ServicesDep) -> StreamOut:
    stream = stop_wanted(services.stores, name)
    log_action(services, caller, "stream.stop", {"stream": name})
    return stream_out(services.stores, caller, stream)


@router.post("/streams/{name}/verify", response_model=VerifyOut)
def verify(
    name: str, caller: StreamVerifier, services: ServicesDep, body: ReceiptsIn | None = None
) -> VerifyOut:
    """Re-read every stored byte of the stream and check hashes, chain and signatures;
    given the `chain.head` receipts a witness received, also that the chain still holds
    each of those heads (409 names the first head it lost or changed)."""
    stores = services.stores
    name = check_stream_name(name)
    receipts = receipts_of(body.receipts, "receipts") if body is not None else []
    log_action(services, caller, "stream.verify", {"stream": name, "receipts": len(receipts)})
    report = verify_stream(
        stores.catalog,
        stores.blobs,
        stores.settings.signing_keys_dir,
        name,
        receipts,
        tsa_ca_bundle=stores.settings.tsa_ca_bundle,
    )
    return VerifyOut(**report.to_json())


@router.get("/streams/{name}/products", response_model=list[ProductOut])
def get_products(name: str, caller: StreamReader, services: ServicesDep) -> list[ProductOut]:
    stream = services.stores.catalog.get_stream(check_stream_name(name))
    return [
        ProductOut(name=p.name, aliases=json.loads(p.aliases), sku=p.sku, price=p.price)
        for p in services.stores.catalog.products(stream.id)
    ]


@router.put("/streams/{name}/products", response_model=list[ProductOut])
def set_products(
    name: str, products: list[ProductIn], caller: StreamManager, services: ServicesDep
) -> list[ProductOut]:
    """Replace the product list (e.g. the live room's shopping cart)."""
    stores = services.stores
    stream = stores.catalog.get_stream(check_stream_name(name))
    stores.catalog.set_products(stream.id, parse_products([p.model_dump() for p in products]))
    log_action(
        services,
        caller,
        "products.set",
        {"stream": name, "count": len(products)},
    )
    return get_products(name, caller, services)
