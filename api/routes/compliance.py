"""Compliance: banned-word reports and the lexicon; webhooks for case systems."""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from api.deps import ComplianceReader, ServicesDep, WebhookManager, log_action
from api.schemas import (
    DeliveryOut,
    LexiconCategoryOut,
    LexiconOut,
    OverviewOut,
    ReportOut,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
)
from compliance.alerts import delivery_json
from compliance.matcher import load_lexicon
from compliance.overview import compliance_overview
from compliance.reports import compliance_report, report_csv
from core.egress import EgressPolicy
from core.redact import redact_source
from core.timeutil import iso, parse_iso
from indexer.claim_counts import IndexClaimCounter
from storage.models import Webhook

router = APIRouter(tags=["compliance"])
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get(
    "/compliance/report",
    response_model=ReportOut,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}},
)
def report(
    caller: ComplianceReader,
    services: ServicesDep,
    stream: Annotated[str | None, Query(max_length=64)] = None,
    streamer: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    format: Literal["json", "csv"] = "json",
) -> ReportOut | Response:
    """Banned-word hits of a stream or a streamer over a time range, with counts by
    category and severity and a link to each moment."""
    built = compliance_report(
        services.stores,
        stream=stream,
        streamer=streamer,
        since=parse_iso(since) if since else None,
        until=parse_iso(until) if until else None,
    )
    log_action(
        services,
        caller,
        "compliance.report",
        {
            "stream": stream,
            "streamer": streamer,
            "since": since,
            "until": until,
            "total": built["total"],
        },
    )
    if format == "csv":
        return Response(report_csv(built), media_type="text/csv; charset=utf-8")
    return ReportOut.model_validate(built)


@router.get("/compliance/overview", response_model=OverviewOut)
def overview(
    caller: ComplianceReader,
    services: ServicesDep,
    since: Annotated[str | None, Query(max_length=64, description="ISO 8601.")] = None,
    until: Annotated[str | None, Query(max_length=64, description="ISO 8601.")] = None,
    bucket: Literal["auto", "hour", "day", "week"] = "auto",
) -> OverviewOut:
    """Banned-word hits per streamer and per stream over a time range (default: the last
    7 days), per category and time bucket, the terms heard most, hits per hour on air,
    and claim counts (utterances per claim type, from the search index)."""
    built = compliance_overview(
        services.stores,
        since=parse_iso(since) if since else None,
        until=parse_iso(until) if until else None,
        bucket=bucket,
        claims=IndexClaimCounter(services.index),
    )
    log_action(
        services,
        caller,
        "compliance.overview",
        {"since": built["since"], "until": built["until"], "total": built["total"]},
    )
    return OverviewOut.model_validate(built)


@router.get("/compliance/lexicon", response_model=LexiconOut)
def lexicon(caller: ComplianceReader, services: ServicesDep) -> LexiconOut:
    loaded = load_lexicon(services.stores.settings.lexicon_path)
    return LexiconOut(
        version=loaded.version,
        terms=len(loaded.terms),
        categories=[
            LexiconCategoryOut(category=c, terms=sum(1 for t in loaded.terms if t.category == c))
            for c in loaded.categories
        ],
    )


def webhook_out(webhook: Webhook) -> WebhookOut:
    return WebhookOut(
        id=webhook.id, url=webhook.url, active=webhook.active, created_at=iso(webhook.created_at)
    )


@router.get("/webhooks", response_model=list[WebhookOut])
def list_webhooks(caller: WebhookManager, services: ServicesDep) -> list[WebhookOut]:
    return [webhook_out(w) for w in services.stores.catalog.webhooks()]


@router.post("/webhooks", response_model=WebhookCreated, status_code=201)
def add_webhook(body: WebhookIn, caller: WebhookManager, services: ServicesDep) -> WebhookCreated:
    """Banned-word alerts of live streams are posted here, signed with the secret. The
    URL must pass the egress policy (a public address, or one the allow-list names)."""
    EgressPolicy.for_settings(services.stores.settings).check_url(body.url, what="webhook")
    secret = body.secret or secrets.token_urlsafe(32)
    webhook = services.stores.catalog.add_webhook(body.url, secret)
    log_action(services, caller, "webhook.add", {"url": redact_source(body.url)})
    return WebhookCreated(**webhook_out(webhook).model_dump(), secret=secret)


@router.delete("/webhooks/{webhook_id}", status_code=204, response_class=Response)
def remove_webhook(webhook_id: RowId, caller: WebhookManager, services: ServicesDep) -> Response:
    services.stores.catalog.deactivate_webhook(webhook_id)
    log_action(services, caller, "webhook.remove", {"webhook": webhook_id})
    return Response(status_code=204)


@router.get("/webhooks/deliveries", response_model=list[DeliveryOut])
def deliveries(caller: WebhookManager, services: ServicesDep) -> list[DeliveryOut]:
    """The delivery log: every event posted (alerts, receipts, time-stamps), its status
    and each attempt."""
    return [DeliveryOut(**delivery_json(d)) for d in services.stores.catalog.deliveries()]
