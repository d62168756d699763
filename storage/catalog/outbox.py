"""The outbox: every webhook event, one delivery row per active webhook, and its log.

Events are queued in the same transaction as what they tell (an alert, a signed head, a
time-stamp token), so a crash loses none; the notifier (``compliance/alerts.py``) posts
what is due and logs every attempt on its row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import NotFoundError
from core.timeutil import iso, utc_now
from storage.catalog.engine import ALERTS_RAISED, CatalogBase
from storage.models import Webhook, WebhookDelivery


@dataclass(frozen=True)
class OutboxEvent:
    """What one webhook event is: its type, whom it is about, a summary for the log,
    and the body posted."""

    event: str
    subject: str
    summary: str
    body: str


def queue_event(s: Session, event: OutboxEvent) -> int:
    """Queue ``event`` for every active webhook inside the caller's transaction; returns
    how many deliveries were queued. The caller marks ``ALERTS_RAISED`` after commit."""
    queued = 0
    for webhook in s.scalars(select(Webhook).where(Webhook.active.is_(True))):
        s.add(
            WebhookDelivery(
                webhook_id=webhook.id,
                event=event.event,
                subject=event.subject,
                summary=event.summary,
                body=event.body,
            )
        )
        queued += 1
    return queued


class OutboxMixin(CatalogBase):
    """Deliveries that are due, the outcome of each attempt, and the delivery log."""

    def queue_events(self, events: Sequence[OutboxEvent]) -> None:
        with self.session() as s:
            for event in events:
                queue_event(s, event)
        self.changes.mark(ALERTS_RAISED)

    def due_deliveries(
        self, now: datetime, limit: int = 50
    ) -> Sequence[tuple[WebhookDelivery, Webhook]]:
        with self.session() as s:
            rows = s.execute(
                select(WebhookDelivery, Webhook)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(limit)
            ).all()
            return [(d, w) for d, w in rows]

    def record_attempt(
        self,
        delivery_id: int,
        *,
        delivered: bool,
        status: int | None,
        error: str | None,
        next_attempt_at: datetime | None,
        elapsed_ms: float,
    ) -> None:
        """Log one attempt; ``next_attempt_at`` None with no delivery means give up."""
        with self.session() as s:
            delivery = s.get(WebhookDelivery, delivery_id)
            if delivery is None:
                raise NotFoundError(f"no webhook delivery {delivery_id}")
            now = utc_now()
            entry = {"at": iso(now), "status": status, "error": error, "ms": round(elapsed_ms, 1)}
            delivery.log = json.dumps([*json.loads(delivery.log), entry])
            delivery.attempts += 1
            delivery.last_status, delivery.last_error = status, error
            if delivered:
                delivery.status, delivery.delivered_at = "delivered", now
            elif next_attempt_at is None:
                delivery.status = "failed"
            else:
                delivery.next_attempt_at = next_attempt_at

    def deliveries(
        self, webhook_id: int | None = None, event: str | None = None
    ) -> Sequence[WebhookDelivery]:
        """The delivery log, oldest first (of one webhook, or one event type, if given)."""
        with self.session() as s:
            query = select(WebhookDelivery).order_by(WebhookDelivery.id)
            if webhook_id is not None:
                query = query.where(WebhookDelivery.webhook_id == webhook_id)
            if event is not None:
                query = query.where(WebhookDelivery.event == event)
            return s.scalars(query).all()
