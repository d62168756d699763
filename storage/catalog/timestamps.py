"""The index of RFC 3161 time-stamp tokens, and which signed heads still lack one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError as RowExists

from storage.catalog.engine import CatalogBase
from storage.models import Signature, Stream, TimestampToken

#: The wake-up a new signature gives the stamper of the same process (``Changes``).
SIGNATURES_STORED = "signatures"


@dataclass(frozen=True)
class UnstampedHead:
    """A signed head that a TSA has not stamped yet."""

    stream: str
    signature: Signature


class TimestampsMixin(CatalogBase):
    """Tokens by stream and head; adding one already indexed is a no-op."""

    def timestamp_tokens(
        self, stream_id: int, head_idx: int | None = None
    ) -> Sequence[TimestampToken]:
        """A stream's tokens (of one head if given), by head, then by the TSA's time."""
        query = select(TimestampToken).where(TimestampToken.stream_id == stream_id)
        if head_idx is not None:
            query = query.where(TimestampToken.head_idx == head_idx)
        with self.session() as s:
            return s.scalars(
                query.order_by(TimestampToken.head_idx, TimestampToken.gen_time, TimestampToken.id)
            ).all()

    def add_timestamp_token(self, token: TimestampToken) -> bool:
        """Index a stored token; False when this TSA's token of the head is indexed
        already (another process stamped it too)."""
        try:
            with self.session() as s:
                found = s.scalar(
                    select(TimestampToken.id).where(
                        TimestampToken.stream_id == token.stream_id,
                        TimestampToken.head_idx == token.head_idx,
                        TimestampToken.tsa_id == token.tsa_id,
                    )
                )
                if found is not None:
                    return False
                s.add(token)
        except RowExists:  # added by another process between the look and the insert
            return False
        return True

    def unstamped_heads(self, tsa_id: str, limit: int) -> list[UnstampedHead]:
        """Signed heads without a token from this TSA, newest first: a late token proves
        less, so fresh heads go before an old backlog (e.g. of a TSA added later)."""
        with self.session() as s:
            rows = s.execute(
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
        return [UnstampedHead(stream=name, signature=signature) for signature, name in rows]
