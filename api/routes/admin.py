"""Administration: API keys, the audit log, metrics; and the unauthenticated health."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from api.app import Caller, Services, allow, log_action, services
from api.schemas import AuditCheckOut, AuditEventOut, HealthOut, KeyCreated, KeyIn, KeyOut
from core.timeutil import iso
from storage import audit
from storage.api_keys import create_key
from storage.metrics import metrics_registry, render_metrics
from storage.models import ApiKey

router = APIRouter(tags=["admin"])
Admin = Annotated[Caller, allow("admin")]
Anyone = Annotated[Caller, allow("admin", "reviewer", "compliance", "case-system")]
Found = Annotated[Services, Depends(services)]
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/health", response_model=HealthOut)
def health(request: Request) -> HealthOut:
    return HealthOut(status="ok", version=request.app.state.version)


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
def who_am_i(caller: Anyone) -> KeyOut:
    """The key in use: its role decides what the web page offers."""
    return key_out(caller.key)


@router.get("/keys", response_model=list[KeyOut])
def list_keys(caller: Admin, found: Found) -> list[KeyOut]:
    return [key_out(k) for k in found.stores.catalog.api_keys()]


@router.post("/keys", response_model=KeyCreated, status_code=201)
def add_key(body: KeyIn, caller: Admin, found: Found) -> KeyCreated:
    key, row = create_key(found.stores.catalog, body.role, body.name)
    log_action(found, caller, "key.create", {"key": row.id, "role": row.role})
    return KeyCreated(**key_out(row).model_dump(), key=key)


@router.delete("/keys/{key_id}", response_model=KeyOut)
def revoke_key(key_id: RowId, caller: Admin, found: Found) -> KeyOut:
    row = found.stores.catalog.revoke_api_key(key_id)
    log_action(found, caller, "key.revoke", {"key": key_id})
    return key_out(row)


@router.get("/audit", response_model=list[AuditEventOut])
def audit_log(
    caller: Admin,
    found: Found,
    after: Annotated[int, Query(ge=0, le=2**31)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEventOut]:
    """Who searched, viewed and exported what, when (oldest first, paged by seq)."""
    return [
        AuditEventOut(**audit.event_json(e))
        for e in found.stores.catalog.audit_events(after, limit)
    ]


@router.get("/audit/verify", response_model=AuditCheckOut)
def audit_verify(caller: Admin, found: Found) -> AuditCheckOut:
    """Re-check the audit log's hash chain from its first event."""
    check = audit.verify_audit(found.stores.catalog)
    return AuditCheckOut(
        events=check.events, ok=check.ok, first_bad_seq=check.first_bad_seq, problem=check.problem
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus metrics"}},
)
def metrics(caller: Admin, found: Found) -> Response:
    body, content_type = render_metrics(metrics_registry(found.stores.catalog))
    return Response(body, media_type=content_type)
