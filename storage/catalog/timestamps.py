"""The index of RFC 3161 time-stamp tokens, and which signed heads still lack one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError as RowExists

from storage.blob_keys import audit_head_key
from storage.catalog.engine import ALERTS_RAISED, CatalogBase
from storage.catalog.outbox import OutboxEvent, queue_event
from storage.models import Receipt, Signature, Stream, TimestampToken

#: The wake-up a new signature gives the stamper of the same process (``Changes``).
SIGNATURES_STORED = "signatures"

CHAIN_LOG = "chain"  # a stream's chain heads (``signatures``)
AUDIT_LOG = "audit"  # the audit log's heads (its ``audit.head`` receipts)


@dataclass(frozen=True)
class UnstampedHead:
    """A signed head that a TSA has not stamped yet: a stream's or the audit log's."""

    log: str  # CHAIN_LOG or AUDIT_LOG
    subject: str  # the stream's name, or "audit"
    stream_id: int | None  # None for the audit log
    head_idx: int  # chain entry index, or audit seq
    head_sha256: str
    blob_key: str  # the signed head record
    signed_at: datetime


class TimestampsMixin(CatalogBase):
    """Tokens by stream and head; adding one already indexed is a no-op."""

    def timestamp_tokens(
        self, stream_id: int | None, head_idx: int | None = None
    ) -> Sequence[TimestampToken]:
        """A stream's tokens (the audit log's for None; of one head if given), by head,
        then by the TSA's time."""
        query = select(TimestampToken)
        if stream_id is None:
            query = query.where(TimestampToken.log == AUDIT_LOG)
        else:
            query = query.where(TimestampToken.stream_id == stream_id)
        if head_idx is not None:
            query = query.where(TimestampToken.head_idx == head_idx)
        with self.session() as s:
            return s.scalars(
                query.order_by(TimestampToken.head_idx, TimestampToken.gen_time, TimestampToken.id)
            ).all()

    def add_timestamp_token(self, token: TimestampToken, event: OutboxEvent | None = None) -> bool:
        """Index a stored token, and queue its ``timestamp`` event for the webhooks in the
        same transaction; False when this TSA's token of the head is indexed already
        (another process stamped it too)."""
        try:
            with self.session() as s:
                found = s.scalar(
                    select(TimestampToken.id).where(
                        TimestampToken.log == token.log,
                        TimestampToken.stream_id.is_(None)
                        if token.stream_id is None
                        else TimestampToken.stream_id == token.stream_id,
                        TimestampToken.head_idx == token.head_idx,
                        TimestampToken.tsa_id == token.tsa_id,
                    )
                )
                if found is not None:
                    return False
                s.add(token)
                if event is not None:
                    queue_event(s, event)
        except RowExists:  # added by another process between the look and the insert
            return False
        if event is not None:
            self.changes.mark(ALERTS_RAISED)
        return True

    def unreferenced_tokens(self, stream_id: int) -> Sequence[TimestampToken]:
        """A stream's tokens that no chain entry lists yet, oldest first."""
        with self.session() as s:
            return s.scalars(
                select(TimestampToken)
                .where(
                    TimestampToken.stream_id == stream_id,
                    TimestampToken.referenced_idx.is_(None),
                )
                .order_by(TimestampToken.head_idx, TimestampToken.id)
            ).all()

    def mark_tokens_referenced(self, stream_id: int, blob_keys: Sequence[str], idx: int) -> None:
        """Note that chain entry ``idx`` lists these tokens (kept as the entry says)."""
        if not blob_keys:
            return
        with self.session() as s:
            s.execute(
                update(TimestampToken)
                .where(
                    TimestampToken.stream_id == stream_id,
                    TimestampToken.blob_key.in_(list(blob_keys)),
                )
                .values(referenced_idx=idx)
            )

    def unstamped_heads(self, tsa_id: str, limit: int) -> list[UnstampedHead]:
        """Signed heads (streams' and the audit log's) without a token from this TSA,
        newest first: a late token proves less, so fresh heads go before an old backlog
        (e.g. of a TSA added later)."""
        with self.session() as s:
            chain = s.execute(
                select(Signature, Stream.name)
                .join(Stream, Stream.id == Signature.stream_id)
                .outerjoin(
                    TimestampToken,
                    and_(
                        TimestampToken.stream_id == Signature.stream_id,
                        TimestampToken.head_idx == Signature.head_idx,
                        TimestampToken.tsa_id == tsa_id,
                    ),
                )
                .where(TimestampToken.id.is_(None))
                .order_by(Signature.id.desc())
                .limit(limit)
            ).all()
            audit = s.execute(
                select(Receipt)
                .outerjoin(
                    TimestampToken,
                    and_(
                        TimestampToken.log == AUDIT_LOG,
                        TimestampToken.head_idx == Receipt.head_idx,
                        TimestampToken.tsa_id == tsa_id,
                    ),
                )
                .where(Receipt.subject == AUDIT_LOG, TimestampToken.id.is_(None))
                .order_by(Receipt.id.desc())
                .limit(limit)
            ).scalars()
            heads = [
                UnstampedHead(
                    CHAIN_LOG,
                    name,
                    sig.stream_id,
                    sig.head_idx,
                    sig.head_sha256,
                    sig.blob_key,
                    sig.signed_at,
                )
                for sig, name in chain
            ]
            heads += [
                UnstampedHead(
                    AUDIT_LOG,
                    AUDIT_LOG,
                    None,
                    receipt.head_idx,
                    receipt.head_sha256,
                    audit_head_key(receipt.head_idx),
                    receipt.created_at,
                )
                for receipt in audit
            ]
        heads.sort(key=lambda head: head.signed_at, reverse=True)
        return heads[:limit]
