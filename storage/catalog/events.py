"""Stream events: taken once by id, claimed and sealed into batches, read back by time."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from core.timeutil import utc_now
from storage.catalog.engine import CatalogBase
from storage.models import EventBatch, EventRefusal, EventRow

_CHUNK = 500  # ids per IN (...) query


def make_transient_copy(row: EventRow) -> EventRow:
    """A fresh row with the same values: a retried insert must not reuse rows a failed
    session had attached."""
    return EventRow(
        stream_id=row.stream_id,
        event_id=row.event_id,
        kind=row.kind,
        at=row.at,
        received_at=row.received_at,
        body=row.body,
        late=row.late,
    )


class EventsMixin(CatalogBase):
    """Events as received (``stream_events``), sealed batches and refusal counts."""

    def add_events(self, stream_id: int, rows: Sequence[EventRow]) -> dict[str, str]:
        """Store the rows whose event id is new to the stream; returns, for each id that
        was there already, its stored body (the caller tells a repeat from a conflict)."""
        for attempt in range(3):
            try:
                return self._add_events(stream_id, rows)
            except IntegrityError:
                # Another request stored one of these ids in between: look again.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _add_events(self, stream_id: int, rows: Sequence[EventRow]) -> dict[str, str]:
        stored: dict[str, str] = {}
        with self.session() as s:
            ids = [row.event_id for row in rows]
            for start in range(0, len(ids), _CHUNK):
                found = s.execute(
                    select(EventRow.event_id, EventRow.body).where(
                        EventRow.stream_id == stream_id,
                        EventRow.event_id.in_(ids[start : start + _CHUNK]),
                    )
                ).all()
                stored.update({str(a): str(b) for a, b in found})
            s.add_all(make_transient_copy(row) for row in rows if row.event_id not in stored)
        return stored

    def count_refusals(self, stream_id: int, reasons: dict[str, int]) -> None:
        with self.session() as s:
            for reason, count in reasons.items():
                row = s.scalar(
                    select(EventRefusal).where(
                        EventRefusal.stream_id == stream_id, EventRefusal.reason == reason
                    )
                )
                if row is None:
                    s.add(EventRefusal(stream_id=stream_id, reason=reason, count=count))
                else:
                    row.count += count

    def event_refusals(self) -> Sequence[tuple[int, str, int]]:
        """(stream id, reason, count) of every stream."""
        with self.session() as s:
            rows = s.execute(
                select(EventRefusal.stream_id, EventRefusal.reason, EventRefusal.count)
            ).all()
            return [(int(a), str(b), int(c)) for a, b, c in rows]

    def event_counts(self) -> dict[int, int]:
        """Events taken per stream id."""
        with self.session() as s:
            rows = s.execute(
                select(EventRow.stream_id, func.count(EventRow.id)).group_by(EventRow.stream_id)
            ).all()
            return {int(a): int(b) for a, b in rows}

    def streams_with_pending_events(self) -> list[int]:
        with self.session() as s:
            return [
                int(x)
                for x in s.scalars(
                    select(EventRow.stream_id).where(EventRow.batch_idx.is_(None)).distinct()
                )
            ]

    def sealed_until(self, stream_id: int) -> datetime | None:
        """Where the stream's closed windows end: an event before it arrives late."""
        with self.session() as s:
            return s.scalar(
                select(func.max(EventBatch.window_end)).where(EventBatch.stream_id == stream_id)
            )

    def claim_events(
        self,
        stream_id: int,
        claim: str,
        before: datetime | None,
        limit: int,
        late_before: datetime | None,
    ) -> Sequence[EventRow]:
        """Claim up to ``limit`` unsealed, unclaimed events (those timed before ``before``
        if given), earliest first, for one sealer: another sealer skips them. Those timed
        before ``late_before`` (a window sealed already) are marked late."""
        now = utc_now()
        with self.session() as s:
            query = select(EventRow.id).where(
                EventRow.stream_id == stream_id,
                EventRow.batch_idx.is_(None),
                EventRow.claim.is_(None),
            )
            if before is not None:
                query = query.where(EventRow.at < before)
            ids = list(s.scalars(query.order_by(EventRow.at, EventRow.id).limit(limit)))
            if ids:
                s.execute(
                    update(EventRow)
                    .where(EventRow.id.in_(ids), EventRow.claim.is_(None))
                    .values(
                        claim=claim,
                        claimed_at=now,
                        late=False if late_before is None else EventRow.at < late_before,
                    )
                )
        with self.session() as s:
            return s.scalars(
                select(EventRow)
                .where(EventRow.stream_id == stream_id, EventRow.claim == claim)
                .order_by(EventRow.at, EventRow.id)
            ).all()

    def pending_event_count(self, stream_id: int) -> int:
        with self.session() as s:
            return int(
                s.scalar(
                    select(func.count(EventRow.id)).where(
                        EventRow.stream_id == stream_id,
                        EventRow.batch_idx.is_(None),
                        EventRow.claim.is_(None),
                    )
                )
                or 0
            )

    def release_stale_claims(self, stream_id: int, older_than: timedelta) -> int:
        """Claims of a sealer that died before its batch reached the chain: the events
        become pending again (a batch that did reach it marked them when indexed)."""
        with self.session() as s:
            result = s.execute(
                update(EventRow)
                .where(
                    EventRow.stream_id == stream_id,
                    EventRow.batch_idx.is_(None),
                    EventRow.claimed_at < utc_now() - older_than,
                )
                .values(claim=None, claimed_at=None)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def add_event_batch(self, batch: EventBatch) -> None:
        """Index a sealed batch and mark its events (idempotent, as chain indexing is)."""
        with self.session() as s:
            found = s.scalar(
                select(EventBatch).where(
                    EventBatch.stream_id == batch.stream_id,
                    EventBatch.entry_idx == batch.entry_idx,
                )
            )
            if found is None:
                s.add(batch)
            s.execute(
                update(EventRow)
                .where(EventRow.stream_id == batch.stream_id, EventRow.claim == batch.batch)
                .values(batch_idx=batch.entry_idx)
            )

    def event_batches(self, stream_id: int) -> Sequence[EventBatch]:
        with self.session() as s:
            return s.scalars(
                select(EventBatch)
                .where(EventBatch.stream_id == stream_id)
                .order_by(EventBatch.entry_idx)
            ).all()

    def events_between(
        self,
        stream_id: int,
        start: datetime | None = None,
        end: datetime | None = None,
        kinds: Collection[str] | None = None,
        limit: int | None = None,
    ) -> Sequence[EventRow]:
        """A stream's events timed in [start, end), of ``kinds`` if given, by time."""
        with self.session() as s:
            query = select(EventRow).where(EventRow.stream_id == stream_id)
            if start is not None:
                query = query.where(EventRow.at >= start)
            if end is not None:
                query = query.where(EventRow.at < end)
            if kinds:
                query = query.where(EventRow.kind.in_(list(kinds)))
            query = query.order_by(EventRow.at, EventRow.id)
            if limit is not None:
                query = query.limit(limit)
            return s.scalars(query).all()
