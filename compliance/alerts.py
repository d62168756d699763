"""Webhook events: queued in the catalog, posted as signed JSON, retried with backoff.

Every body is a typed event: its ``event`` field (and the ``X-LiveWitness-Event``
header) is one of :data:`EVENTS`: ``banned_word`` (an alert: a banned word on a live
stream), ``chain.head`` and ``audit.head`` (receipts: a signed head of a stream's chain
or of the audit log, for a witness outside the installation to keep; see
``storage/receipts.py``). Each is stored first, where it happens (the indexer stores
alerts, storage queues receipts where it signs a head), with one delivery row per active
webhook, then posted by :class:`WebhookNotifier`, so a crash or a receiver that is down
loses nothing: pending deliveries are retried with exponential backoff until
``webhook_max_attempts``, and every attempt is logged on its delivery row (the delivery
log).

Each body is signed like Stripe's and GitHub's webhooks, so receivers can use what they
know: ``X-LiveWitness-Signature: sha256=HEX``, the HMAC-SHA256 with the webhook's secret
of ``TIMESTAMP.BODY``, where TIMESTAMP is the ``X-LiveWitness-Timestamp`` header (Unix
seconds; a receiver refuses old ones to stop replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

import httpx

from core.settings import Settings
from core.timeutil import utc_now
from storage.catalog import ALERTS_RAISED, Catalog
from storage.models import Webhook
from storage.receipts import AUDIT_HEAD_EVENT, CHAIN_HEAD_EVENT

BANNED_WORD_EVENT = "banned_word"
EVENTS = (BANNED_WORD_EVENT, CHAIN_HEAD_EVENT, AUDIT_HEAD_EVENT)

SIGNATURE_HEADER = "X-LiveWitness-Signature"
TIMESTAMP_HEADER = "X-LiveWitness-Timestamp"
EVENT_HEADER = "X-LiveWitness-Event"
DELIVERY_HEADER = "X-LiveWitness-Delivery"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (used by the tests, documented for integrators)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def moment_link(settings: Settings, stream: str, offset: float) -> str:
    """Where the web page plays a stream from an offset (seconds from its start)."""
    return f"{settings.public_url.rstrip('/')}/#stream={quote(stream)}&t={offset:.1f}"


def payload_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()


@dataclass(frozen=True)
class DueDelivery:
    """One event due to one webhook: an alert's delivery or a receipt's."""

    log: Literal["alert", "receipt"]  # which delivery log the attempt goes to
    delivery_id: int
    attempts: int
    next_attempt_at: datetime
    event: str
    body: bytes
    webhook: Webhook


class WebhookNotifier:
    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.clock = clock
        self._client = httpx.Client(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False
        )

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        initial = self.settings.webhook_retry_initial_seconds
        return float(min(initial * 2 ** (attempts - 1), self.settings.webhook_retry_max_seconds))

    def due(self) -> list[DueDelivery]:
        """Alerts' and receipts' deliveries that are due, oldest first."""
        now = self.clock()
        found = [
            DueDelivery(
                "alert",
                d.id,
                d.attempts,
                d.next_attempt_at,
                alert.kind,
                alert.payload.encode(),
                webhook,
            )
            for d, alert, webhook in self.catalog.due_deliveries(now)
        ]
        found += [
            DueDelivery(
                "receipt",
                d.id,
                d.attempts,
                d.next_attempt_at,
                receipt.event,
                receipt.payload.encode(),
                webhook,
            )
            for d, receipt, webhook in self.catalog.due_receipt_deliveries(now)
        ]
        return sorted(found, key=lambda due: (due.next_attempt_at, due.log, due.delivery_id))

    def deliver_due(self) -> int:
        """Post every delivery that is due; returns how many were delivered."""
        delivered = 0
        for due in self.due():
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "LiveWitness-Webhook/1",
                EVENT_HEADER: due.event,
                # Alerts and receipts count their deliveries apart: "r" keeps ids unique.
                DELIVERY_HEADER: str(due.delivery_id)
                if due.log == "alert"
                else f"r{due.delivery_id}",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(due.webhook.secret, timestamp, due.body),
            }
            began = time.perf_counter()
            status: int | None = None
            error: str | None = None
            try:
                response = self._client.post(due.webhook.url, content=due.body, headers=headers)
                status = response.status_code
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            elapsed_ms = (time.perf_counter() - began) * 1000
            attempts = due.attempts + 1
            retry_at = None
            if error is not None and attempts < self.settings.webhook_max_attempts:
                retry_at = self.clock() + timedelta(seconds=self.backoff(attempts))
            record = (
                self.catalog.record_attempt
                if due.log == "alert"
                else self.catalog.record_receipt_attempt
            )
            record(
                due.delivery_id,
                delivered=error is None,
                status=status,
                error=error,
                next_attempt_at=retry_at,
                elapsed_ms=elapsed_ms,
            )
            delivered += error is None
        return delivered

    def follow(self, stop: threading.Event, poll_seconds: float = 0.25) -> None:
        changes = self.catalog.changes
        while not stop.is_set():
            seen = changes.count(ALERTS_RAISED)
            self.deliver_due()
            changes.wait(ALERTS_RAISED, seen, poll_seconds)

    def close(self) -> None:
        self._client.close()
