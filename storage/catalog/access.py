"""Access: API keys and the rows of the hash-linked audit log."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from core.errors import NotFoundError, StorageError
from core.timeutil import utc_now
from storage.catalog.engine import CatalogBase
from storage.models import ApiKey, AuditEvent


@dataclass(eq=False)
class _AuditTicket:
    """One event waiting to be appended, and what became of it."""

    make: Callable[[AuditEvent | None], AuditEvent]
    done: bool = False
    event: AuditEvent | None = None
    error: Exception | None = None


@dataclass(eq=False)
class _AuditQueue:
    writer: threading.Lock = field(default_factory=threading.Lock)
    pending_lock: threading.Lock = field(default_factory=threading.Lock)
    pending: list[_AuditTicket] = field(default_factory=list)


_QUEUES_LOCK = threading.Lock()


def _audit_queue(catalog: CatalogBase) -> _AuditQueue:
    """The catalog's audit queue, made on first use (the mixins share CatalogBase's
    constructor)."""
    with _QUEUES_LOCK:
        queue: _AuditQueue | None = getattr(catalog, "_audit_queue", None)
        if queue is None:
            queue = _AuditQueue()
            catalog._audit_queue = queue  # type: ignore[attr-defined]
        return queue


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
        """Append ``make(previous event)`` as the next link, committed before it returns.

        Group commit: one thread of the process writes at a time, and the writer appends
        every event waiting by then in one transaction (one fsync). Fifty concurrent
        searches, each audited, otherwise queued on the database's write lock one commit
        at a time (docs/benchmarks.md, "Concurrent searches")."""
        queue = _audit_queue(self)
        ticket = _AuditTicket(make)
        with queue.pending_lock:
            queue.pending.append(ticket)
        with queue.writer:
            if not ticket.done:  # else an earlier writer took it along
                with queue.pending_lock:
                    batch, queue.pending = queue.pending, []
                self._append_audit_batch(batch)
        if ticket.error is not None:
            raise ticket.error
        assert ticket.event is not None
        return ticket.event

    def _append_audit_batch(self, batch: list[_AuditTicket]) -> None:
        """Append the batch's events in order, in one transaction; retried when another
        process took the same sequence number (the unique seq keeps the chain a line)."""
        try:
            for _ in range(20):
                try:
                    with self.session() as s:
                        last = s.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
                        events = []
                        for ticket in batch:
                            last = ticket.make(last)
                            s.add(last)
                            events.append(last)
                        s.flush()
                    for ticket, event in zip(batch, events, strict=True):
                        ticket.event = event
                    return
                except SAIntegrityError:
                    continue
            raise StorageError("the audit log is too busy to append to")
        except Exception as exc:  # each waiting request gets the error, none a lost event
            for ticket in batch:
                ticket.error = exc
            raise
        finally:
            for ticket in batch:
                ticket.done = True

    def last_audit_event(self) -> AuditEvent | None:
        with self.session() as s:
            return s.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))

    def audit_events(self, after_seq: int = 0, limit: int | None = None) -> Sequence[AuditEvent]:
        with self.session() as s:
            query = select(AuditEvent).where(AuditEvent.seq > after_seq).order_by(AuditEvent.seq)
            if limit is not None:
                query = query.limit(limit)
            return s.scalars(query).all()
