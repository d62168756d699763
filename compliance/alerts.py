"""Webhook events: queued in the catalog, posted as signed JSON, retried with backoff.

Every body is a typed event: its ``event`` field (and the ``X-LiveWitness-Event`` header)
is one of :data:`EVENTS`: ``banned_word`` (an alert: a banned word on a live stream),
``banned_word.retracted`` (an alert raised on provisional words that the sentence's own
transcript did not confirm), ``compliance.spike`` (an alert: a streamer's banned-word rate
over the last hour far above their own baseline; ``compliance/spikes.py``), ``chain.head``
and ``audit.head`` (receipts: a signed head of a stream's chain or of the audit log, for a
witness outside the installation to keep), ``timestamp`` (an RFC 3161 token a TSA gave
such a head; see ``storage/receipts.py``). Each is stored first, where it happens (the
indexer stores alerts, storage queues receipts where it signs a head and time-stamp
receipts where it stores a token), in the outbox: one delivery row per active webhook
holding the exact body (``storage/catalog/outbox.py``). Then :class:`WebhookNotifier`
posts it, so a crash or a receiver that is down loses nothing: pending deliveries are
retried with exponential backoff until ``webhook_max_attempts``, and every attempt is
logged on its delivery row (the delivery log).

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
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from core.egress import EgressPolicy
from core.egress_http import egress_client
from core.errors import LiveWitnessError
from core.settings import Settings
from core.timeutil import iso, utc_now
from storage.catalog import ALERTS_RAISED, Catalog
from storage.models import WebhookDelivery
from storage.receipts import AUDIT_HEAD_EVENT, CHAIN_HEAD_EVENT, TIMESTAMP_EVENT, payload_json

BANNED_WORD_EVENT = "banned_word"
# A banned_word alert raised on provisional words (the fast pass) that the sentence's own
# transcript did not confirm: the term is not heard there (indexer/service.py).
RETRACTED_EVENT = "banned_word.retracted"
SPIKE_EVENT = "compliance.spike"  # a streamer's banned-word rate jumped (compliance/spikes.py)
EVENTS = (
    BANNED_WORD_EVENT,
    RETRACTED_EVENT,
    SPIKE_EVENT,
    CHAIN_HEAD_EVENT,
    AUDIT_HEAD_EVENT,
    TIMESTAMP_EVENT,
)

SIGNATURE_HEADER = "X-LiveWitness-Signature"
TIMESTAMP_HEADER = "X-LiveWitness-Timestamp"
EVENT_HEADER = "X-LiveWitness-Event"
DELIVERY_HEADER = "X-LiveWitness-Delivery"


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """``secret`` as the receiver knows it, or the HMAC key the catalog keeps for it."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (used by the tests, documented for integrators)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def moment_link(settings: Settings, stream: str, offset: float) -> str:
    """Where the web page plays a stream from an offset (seconds from its start)."""
    return f"{settings.public_url.rstrip('/')}/#stream={quote(stream)}&t={offset:.1f}"


def payload_body(payload: dict[str, Any]) -> bytes:
    return payload_json(payload).encode()


def delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    """A delivery as the delivery log shows it (API and CLI)."""
    return {
        "delivery": delivery.id,
        "webhook": delivery.webhook_id,
        "event": delivery.event,
        "subject": delivery.subject,
        "summary": delivery.summary,
        "term": delivery.summary
        if delivery.event in (BANNED_WORD_EVENT, RETRACTED_EVENT)
        else None,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "created_at": iso(delivery.created_at),
        "delivered_at": iso(delivery.delivered_at) if delivery.delivered_at else None,
        "log": json.loads(delivery.log),
    }


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
        # Only where the egress policy allows, to the address it checked, no redirects.
        self._client = egress_client(
            EgressPolicy.for_settings(settings),
            timeout=settings.webhook_timeout_seconds,
            what="webhook",
        )

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        initial = self.settings.webhook_retry_initial_seconds
        return float(min(initial * 2 ** (attempts - 1), self.settings.webhook_retry_max_seconds))

    def deliver_due(self) -> int:
        """Post every delivery that is due; returns how many were delivered. Every
        attempt's outcome is recorded, whatever goes wrong with one delivery (a URL httpx
        cannot parse, a refused address), so no delivery can stop the others."""
        delivered = 0
        for delivery, webhook in self.catalog.due_deliveries(self.clock()):
            body = delivery.body.encode()
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "LiveWitness-Webhook/1",
                EVENT_HEADER: delivery.event,
                DELIVERY_HEADER: str(delivery.id),
                TIMESTAMP_HEADER: timestamp,
            }
            began = time.perf_counter()
            status: int | None = None
            error: str | None = None
            try:
                # Inside the try: a secret that cannot be unsealed is this delivery's
                # failed attempt, not the sender's end.
                key = self.catalog.webhook_signing_key(webhook)
                headers[SIGNATURE_HEADER] = sign(key, timestamp, body)
                response = self._client.post(webhook.url, content=body, headers=headers)
                status = response.status_code
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except httpx.InvalidURL as exc:
                error = f"invalid URL: {exc}"
            except (httpx.HTTPError, LiveWitnessError, ValueError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            elapsed_ms = (time.perf_counter() - began) * 1000
            attempts = delivery.attempts + 1
            retry_at = None
            if error is not None and attempts < self.settings.webhook_max_attempts:
                retry_at = self.clock() + timedelta(seconds=self.backoff(attempts))
            self.catalog.record_attempt(
                delivery.id,
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
