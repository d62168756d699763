"""Receipts: signed heads queued for the webhooks, one delivery per active webhook."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from core.errors import NotFoundError, StorageError
from core.timeutil import iso, utc_now
from storage.catalog.engine import ALERTS_RAISED, CatalogBase
from storage.models import AlertDelivery, Receipt, ReceiptDelivery, Webhook


def log_attempt(
    delivery: AlertDelivery | ReceiptDelivery,
    *,
    delivered: bool,
    status: int | None,
    error: str | None,
    next_attempt_at: datetime | None,
    elapsed_ms: float,
) -> None:
    """Add one attempt to a delivery's log; ``next_attempt_at`` None with no delivery
    means give up."""
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


class ReceiptsMixin(CatalogBase):
    """Receipts (one per signed head) and their deliveries, beside the alerts'."""

    def add_receipt(self, receipt: Receipt) -> Receipt:
        """Queue a receipt and one delivery per active webhook; a head already queued is
        left as it is (a head is signed once, then found signed)."""
        with self.session() as s:
            found = s.scalar(
                select(Receipt).where(
                    Receipt.event == receipt.event,
                    Receipt.subject == receipt.subject,
                    Receipt.head_idx == receipt.head_idx,
                )
            )
            if found is not None:
                if found.head_sha256 != receipt.head_sha256:
                    raise StorageError(
                        f"{receipt.event} {receipt.head_idx} of {receipt.subject!r} was"
                        " queued with another hash"
                    )
                return found
            s.add(receipt)
            s.flush()
            for webhook in s.scalars(select(Webhook).where(Webhook.active.is_(True))):
                s.add(ReceiptDelivery(receipt_id=receipt.id, webhook_id=webhook.id))
            s.flush()
            s.refresh(receipt)
        # The notifier waits on one topic for everything it posts.
        self.changes.mark(ALERTS_RAISED)
        return receipt

    def receipts(self, event: str | None = None, subject: str | None = None) -> Sequence[Receipt]:
        with self.session() as s:
            query = select(Receipt).order_by(Receipt.id)
            if event is not None:
                query = query.where(Receipt.event == event)
            if subject is not None:
                query = query.where(Receipt.subject == subject)
            return s.scalars(query).all()

    def last_receipt(self, event: str, subject: str) -> Receipt | None:
        with self.session() as s:
            return s.scalar(
                select(Receipt)
                .where(Receipt.event == event, Receipt.subject == subject)
                .order_by(Receipt.head_idx.desc())
                .limit(1)
            )

    def due_receipt_deliveries(
        self, now: datetime, limit: int = 50
    ) -> Sequence[tuple[ReceiptDelivery, Receipt, Webhook]]:
        with self.session() as s:
            rows = s.execute(
                select(ReceiptDelivery, Receipt, Webhook)
                .join(Receipt, Receipt.id == ReceiptDelivery.receipt_id)
                .join(Webhook, Webhook.id == ReceiptDelivery.webhook_id)
                .where(ReceiptDelivery.status == "pending", ReceiptDelivery.next_attempt_at <= now)
                .order_by(ReceiptDelivery.next_attempt_at, ReceiptDelivery.id)
                .limit(limit)
            ).all()
            return [(d, r, w) for d, r, w in rows]

    def record_receipt_attempt(
        self,
        delivery_id: int,
        *,
        delivered: bool,
        status: int | None,
        error: str | None,
        next_attempt_at: datetime | None,
        elapsed_ms: float,
    ) -> None:
        with self.session() as s:
            delivery = s.get(ReceiptDelivery, delivery_id)
            if delivery is None:
                raise NotFoundError(f"no receipt delivery {delivery_id}")
            log_attempt(
                delivery,
                delivered=delivered,
                status=status,
                error=error,
                next_attempt_at=next_attempt_at,
                elapsed_ms=elapsed_ms,
            )

    def receipt_deliveries(
        self, webhook_id: int | None = None
    ) -> Sequence[tuple[ReceiptDelivery, Receipt]]:
        with self.session() as s:
            query = (
                select(ReceiptDelivery, Receipt)
                .join(Receipt, Receipt.id == ReceiptDelivery.receipt_id)
                .order_by(ReceiptDelivery.id)
            )
            if webhook_id is not None:
                query = query.where(ReceiptDelivery.webhook_id == webhook_id)
            return [(d, r) for d, r in s.execute(query).all()]
