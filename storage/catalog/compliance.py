"""Compliance: banned-word hits, webhooks and alerts (delivered through the outbox)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import ConfigError, NotFoundError
from storage.catalog.engine import ALERTS_RAISED, CatalogBase
from storage.catalog.outbox import OutboxEvent, queue_event
from storage.models import Alert, BannedHit, Webhook
from storage.webhook_secrets import SEALED_PREFIX, WebhookSecrets, is_sealed


class ComplianceMixin(CatalogBase):
    """Banned-word hits per segment, webhooks and alerts."""

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

    # Seals webhook secrets at rest; open_stores sets it. A catalog opened without one
    # (schema tests) stores secrets as given, the form earlier releases wrote.
    webhook_secrets: WebhookSecrets | None = None

    def add_webhook(self, url: str, secret: str) -> Webhook:
        with self.session() as s:
            webhook = Webhook(url=url, secret=self._sealed(s, secret), active=True)
            s.add(webhook)
            s.flush()
            s.refresh(webhook)
            return webhook

    def webhook_signing_key(self, webhook: Webhook) -> bytes:
        """The HMAC key that signs what is posted to ``webhook`` (its secret, opened with
        the keys directory's key when sealed)."""
        if self.webhook_secrets is None:
            if is_sealed(webhook.secret):
                raise ConfigError("webhook secrets are sealed: open the catalog with its keys")
            return webhook.secret.encode()
        return self.webhook_secrets.signing_key(webhook.secret)

    def seal_webhook_secrets(self) -> int:
        """Seal the secrets an earlier release stored in plain text; returns how many."""
        if self.webhook_secrets is None:
            return 0
        with self.session() as s:
            plain = [w for w in s.scalars(select(Webhook)) if not is_sealed(w.secret)]
            for webhook in plain:
                webhook.secret = self._sealed(s, webhook.secret)
            return len(plain)

    def _sealed(self, s: Session, secret: str) -> str:
        box = self.webhook_secrets
        if box is None:
            return secret
        if not box.has_key() and s.scalar(
            select(func.count(Webhook.id)).where(Webhook.secret.startswith(SEALED_PREFIX))
        ):
            box.key()  # raises: a new key here could not open the secrets sealed before
        return box.seal(secret)

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

    def alerts_between(self, stream_id: int, kind: str, low: float, high: float) -> Sequence[Alert]:
        """Alerts of ``kind`` on a stream at offsets in [low, high], oldest first."""
        with self.session() as s:
            return s.scalars(
                select(Alert)
                .where(
                    Alert.stream_id == stream_id,
                    Alert.kind == kind,
                    Alert.offset >= low,
                    Alert.offset <= high,
                )
                .order_by(Alert.id)
            ).all()

    def alerted_since(self, kind: str, term: str, since: datetime) -> bool:
        """Whether an alert of ``kind`` about ``term`` was raised at or after ``since``
        (a streamer's spike is raised once per hour window)."""
        with self.session() as s:
            found = s.scalar(
                select(func.count(Alert.id)).where(
                    Alert.kind == kind, Alert.term == term, Alert.created_at >= since
                )
            )
            return bool(found)

    def add_alert(self, alert: Alert, stream: str) -> int:
        """Store an alert of ``stream`` (the subject the webhooks' log shows: a spike's
        is its streamer) and queue it for every active webhook; returns its id."""
        with self.session() as s:
            s.add(alert)
            s.flush()
            queue_event(s, OutboxEvent(alert.kind, stream, alert.term, alert.payload))
            alert_id = alert.id
        self.changes.mark(ALERTS_RAISED)
        return alert_id
