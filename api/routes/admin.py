"""Administration: API keys, the audit log, metrics; and the unauthenticated health and
signing key."""

from __future__ import annotations

import sqlite3
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from api.deps import Administrator, AnyRole, Services, ServicesDep, log_action
from api.schemas import (
    AuditCheckOut,
    AuditEventOut,
    HealthOut,
    KeyCreated,
    KeyIn,
    KeyOut,
    ReceiptsIn,
    SigningKeyOut,
    StageOut,
)
from core.errors import LiveWitnessError
from core.jobs import TRANSCRIPTION_JOBS
from core.timeutil import iso
from storage import audit
from storage.api_keys import create_api_key
from storage.metrics import metrics_registry, render_metrics
from storage.models import ApiKey
from storage.receipts import HeadReceipt, receipts_of
from storage.signing import signing_key_info
from storage.stages import STAGES, free_disk_bytes

router = APIRouter(tags=["admin"])
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "A stage is down or a check failed"}},
)
def health(request: Request, services: ServicesDep) -> JSONResponse:
    """Each stage of this process (alive, restarts, last error, backlog), the catalog, the
    search index and the data directory's free disk; 503 when something is wrong, so a
    load balancer or orchestrator can act on the status alone. No key needed."""
    settings = services.stores.settings
    problems: list[str] = []
    stages = STAGES.snapshot()
    problems += [
        f"stage {s.name} is down: {s.last_error or 'not running'}" for s in stages if not s.alive
    ]
    backlog: int | None = None
    try:
        backlog = services.stores.catalog.backlog(*TRANSCRIPTION_JOBS)
    except (LiveWitnessError, SQLAlchemyError) as exc:
        problems.append(f"catalog: {exc}")
    index_ok = True
    try:
        services.index.count()
    except (LiveWitnessError, sqlite3.Error) as exc:
        index_ok = False
        problems.append(f"search index: {exc}; rebuild it with `livewitness reindex`")
    free = free_disk_bytes(settings.home)
    least = settings.min_free_disk_mb * 1024 * 1024
    if free is not None and free < least:
        problems.append(
            f"{free // 2**20} MiB free on the disk of {settings.home}, below"
            f" {settings.min_free_disk_mb} MiB: free some space"
        )
    body = HealthOut(
        status="down" if problems else "ok",
        version=request.app.state.version,
        problems=problems,
        stages=[
            StageOut(
                name=s.name,
                alive=s.alive,
                restarts=s.restarts,
                last_error=s.last_error,
                last_error_at=iso(s.last_error_at) if s.last_error_at else None,
                backlog=s.backlog,
            )
            for s in stages
        ],
        catalog_ok=backlog is not None,
        search_index_ok=index_ok,
        transcription_backlog=backlog,
        free_disk_bytes=free,
        min_free_disk_bytes=least,
    )
    return JSONResponse(body.model_dump(), status_code=503 if problems else 200)


@router.get("/signing-key", response_model=SigningKeyOut)
def signing_key(services: ServicesDep) -> SigningKeyOut:
    """The key this installation signs chains and evidence packages with. No API key
    needed: a public key is public, and whoever checks a package must be able to pin it."""
    info = signing_key_info(services.stores.chain.signer.public_key)
    return SigningKeyOut(
        key_id=info.key_id, algorithm="Ed25519", public_key_pem=info.public_key_pem
    )


def key_out(row: ApiKey) -> KeyOut:
    return KeyOut(
        id=row.id,
        prefix=row.prefix,
        role=row.role,
        name=row.name,
        created_at=iso(row.created_at),
        revoked_at=iso(row.revoked_at) if row.revoked_at else None,
    )


@router.get("/me", response_model=KeyOut)
def who_am_i(caller: AnyRole) -> KeyOut:
    """The key in use: its role decides what the web page offers."""
    return key_out(caller.key)


@router.get("/keys", response_model=list[KeyOut])
def list_keys(caller: Administrator, services: ServicesDep) -> list[KeyOut]:
    return [key_out(k) for k in services.stores.catalog.api_keys()]


@router.post("/keys", response_model=KeyCreated, status_code=201)
def add_key(body: KeyIn, caller: Administrator, services: ServicesDep) -> KeyCreated:
    key, row = create_api_key(services.stores.catalog, body.role, body.name)
    log_action(services, caller, "key.create", {"key": row.id, "role": row.role})
    return KeyCreated(**key_out(row).model_dump(), key=key)


@router.delete("/keys/{key_id}", response_model=KeyOut)
def revoke_key(key_id: RowId, caller: Administrator, services: ServicesDep) -> KeyOut:
    row = services.stores.catalog.revoke_api_key(key_id)
    log_action(services, caller, "key.revoke", {"key": key_id})
    return key_out(row)


@router.get("/audit", response_model=list[AuditEventOut])
def audit_log(
    caller: Administrator,
    services: ServicesDep,
    after: Annotated[int, Query(ge=0, le=2**31)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEventOut]:
    """Who searched, viewed and exported what, when (oldest first, paged by seq)."""
    return [
        AuditEventOut(**audit.event_json(e))
        for e in services.stores.catalog.audit_events(after, limit)
    ]


@router.get("/audit/verify", response_model=AuditCheckOut)
def audit_verify(caller: Administrator, services: ServicesDep) -> AuditCheckOut:
    """Re-check the audit log's hash chain from its first event, and the log against its
    signed heads: cut-off events, a rewrite with recomputed hashes or a forged head fail."""
    return _audit_check(services, [])


@router.post("/audit/verify", response_model=AuditCheckOut)
def audit_verify_receipts(
    body: ReceiptsIn, caller: Administrator, services: ServicesDep
) -> AuditCheckOut:
    """As GET, and against the `audit.head` receipts a witness received too."""
    return _audit_check(services, receipts_of(body.receipts, "receipts"))


def _audit_check(services: Services, receipts: list[HeadReceipt]) -> AuditCheckOut:
    stores = services.stores
    check = audit.verify_audit(
        stores.catalog,
        stores.blobs,
        stores.chain.signer.public_key,
        receipts,
        stores.settings.tsa_ca_bundle,
    )
    return AuditCheckOut(
        events=check.events,
        ok=check.ok,
        first_bad_seq=check.first_bad_seq,
        problem=check.problem,
        heads=check.heads,
        signed_seq=check.signed_seq,
        timestamps=check.timestamps,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus metrics"}},
)
def metrics(caller: Administrator, services: ServicesDep) -> Response:
    body, content_type = render_metrics(metrics_registry(services.stores.catalog))
    return Response(body, media_type=content_type)
