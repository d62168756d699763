"""Access: API keys and the rows of the hash-linked audit log."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from core.errors import NotFoundError, StorageError
from core.timeutil import utc_now
from storage.catalog.engine import CatalogBase
from storage.models import ApiKey, AuditEvent


class AccessMixin(CatalogBase):
    """API keys (stored by hash) and audit events (appended in sequence)."""

    def add_api_key(self, key: ApiKey) -> ApiKey:
        with self.session() as s:
            s.add(key)
            s.flush()
            s.refresh(key)
            return key

    def api_key_by_hash(self, sha256: str) -> ApiKey | None:
        with self.session() as s:
            return s.scalar(select(ApiKey).where(ApiKey.sha256 == sha256))

    def api_keys(self) -> Sequence[ApiKey]:
        with self.session() as s:
            return s.scalars(select(ApiKey).order_by(ApiKey.id)).all()

    def revoke_api_key(self, key_id: int) -> ApiKey:
        with self.session() as s:
            key = s.get(ApiKey, key_id)
            if key is None:
                raise NotFoundError(f"no API key {key_id}")
            key.revoked_at = key.revoked_at or utc_now()
            return key

    def append_audit(self, make: Callable[[AuditEvent | None], AuditEvent]) -> AuditEvent:
        """Append ``make(previous event)`` as the next link; retried when another writer
        took the same sequence number (the unique seq keeps the chain a line)."""
        for _ in range(20):
            try:
                with self.session() as s:
                    last = s.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
                    event = make(last)
                    s.add(event)
                    s.flush()
                    return event
            except SAIntegrityError:
                continue
        raise StorageError("the audit log is too busy to append to")

    def last_audit_event(self) -> AuditEvent | None:
        with self.session() as s:
            return s.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))

    def audit_events(self, after_seq: int = 0, limit: int | None = None) -> Sequence[AuditEvent]:
        with self.session() as s:
            query = select(AuditEvent).where(AuditEvent.seq > after_seq).order_by(AuditEvent.seq)
            if limit is not None:
                query = query.limit(limit)
            return s.scalars(query).all()
