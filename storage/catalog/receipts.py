"""Receipts: signed heads queued for the webhooks (through the outbox)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from core.errors import StorageError
from storage.catalog.engine import ALERTS_RAISED, CatalogBase
from storage.catalog.outbox import OutboxEvent, queue_event
from storage.models import Receipt


class ReceiptsMixin(CatalogBase):
    """Receipts: one per signed head, stream chains' and the audit log's."""

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
            summary = str(receipt.head_idx)
            queue_event(s, OutboxEvent(receipt.event, receipt.subject, summary, receipt.payload))
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
