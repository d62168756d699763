"""Compliance: banned-word hits, webhooks, alerts and their deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select

from core.errors import NotFoundError
from storage.catalog.engine import ALERTS_RAISED, CatalogBase
from storage.catalog.receipts import log_attempt
from storage.models import Alert, AlertDelivery, BannedHit, Webhook


class ComplianceMixin(CatalogBase):
    """Banned-word hits per segment, webhooks, alerts and one delivery per alert and webhook."""

    def replace_banned_hits(
        self, stream_id: int, segment_seq: int, hits: Sequence[BannedHit]
    ) -> None:
        """Make ``hits`` a segment's banned-word hits (they are derived, so replaceable)."""
        with self.session() as s:
            for old in s.scalars(
                select(BannedHit).where(
                    BannedHit.stream_id == stream_id, BannedHit.segment_seq == segment_seq
                )
            ):
                s.delete(old)
            s.flush()
            for hit in hits:
                hit.stream_id, hit.segment_seq = stream_id, segment_seq
                s.add(hit)

    def banned_hits(
        self,
        stream_ids: Sequence[int] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Sequence[BannedHit]:
        with self.session() as s:
            query = select(BannedHit).order_by(BannedHit.at, BannedHit.id)
            if stream_ids is not None:
                query = query.where(BannedHit.stream_id.in_(stream_ids))
            if since is not None:
                query = query.where(BannedHit.at >= since)
            if until is not None:
                query = query.where(BannedHit.at <= until)
            return s.scalars(query).all()

    def add_webhook(self, url: str, secret: str) -> Webhook:
        with self.session() as s:
            webhook = Webhook(url=url, secret=secret, active=True)
            s.add(webhook)
            s.flush()
            s.refresh(webhook)
            return webhook

    def webhooks(self, active_only: bool = False) -> Sequence[Webhook]:
        with self.session() as s:
            query = select(Webhook).order_by(Webhook.id)
            if active_only:
                query = query.where(Webhook.active.is_(True))
            return s.scalars(query).all()

    def deactivate_webhook(self, webhook_id: int) -> None:
        with self.session() as s:
            webhook = s.get(Webhook, webhook_id)
            if webhook is None:
                raise NotFoundError(f"no webhook {webhook_id}")
            webhook.active = False

    def alerted_near(
        self, stream_id: int, kind: str, term: str, offset: float, within: float
    ) -> bool:
        """Whether this term was already alerted on this stream within ``within`` seconds
        (a segment's last words are decoded twice: once alone, once with the next one)."""
        with self.session() as s:
            found = s.scalar(
                select(func.count(Alert.id)).where(
                    Alert.stream_id == stream_id,
                    Alert.kind == kind,
                    Alert.term == term,
                    Alert.offset >= offset - within,
                    Alert.offset <= offset + within,
                )
            )
            return bool(found)

    def add_alert(self, alert: Alert) -> int:
        """Store an alert and queue one delivery per active webhook; returns its id."""
        with self.session() as s:
            s.add(alert)
            s.flush()
            for webhook in s.scalars(select(Webhook).where(Webhook.active.is_(True))):
                s.add(AlertDelivery(alert_id=alert.id, webhook_id=webhook.id))
            alert_id = alert.id
        self.changes.mark(ALERTS_RAISED)
        return alert_id

    def due_deliveries(
        self, now: datetime, limit: int = 50
    ) -> Sequence[tuple[AlertDelivery, Alert, Webhook]]:
        with self.session() as s:
            rows = s.execute(
                select(AlertDelivery, Alert, Webhook)
                .join(Alert, Alert.id == AlertDelivery.alert_id)
                .join(Webhook, Webhook.id == AlertDelivery.webhook_id)
                .where(AlertDelivery.status == "pending", AlertDelivery.next_attempt_at <= now)
                .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id)
                .limit(limit)
            ).all()
            return [(d, a, w) for d, a, w in rows]

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
            delivery = s.get(AlertDelivery, delivery_id)
            if delivery is None:
                raise NotFoundError(f"no alert delivery {delivery_id}")
            log_attempt(
                delivery,
                delivered=delivered,
                status=status,
                error=error,
                next_attempt_at=next_attempt_at,
                elapsed_ms=elapsed_ms,
            )

    def deliveries(self, webhook_id: int | None = None) -> Sequence[tuple[AlertDelivery, Alert]]:
        with self.session() as s:
            query = (
                select(AlertDelivery, Alert)
                .join(Alert, Alert.id == AlertDelivery.alert_id)
                .order_by(AlertDelivery.id)
            )
            if webhook_id is not None:
                query = query.where(AlertDelivery.webhook_id == webhook_id)
            return [(d, a) for d, a in s.execute(query).all()]
