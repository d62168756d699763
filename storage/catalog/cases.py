"""Cases: their moments, the index of their signed overlays, and the legal holds they
place on stored blobs (``BlobHold``: a blob is held while any of its rows is unreleased)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from core.errors import ConflictError, NotFoundError
from core.timeutil import utc_now
from storage.catalog.engine import CatalogBase
from storage.models import BlobHold, Case, CaseMoment, CaseOverlay

OPEN = "open"
CLOSED = "closed"
CASE_STATUSES = (OPEN, CLOSED)


class CasesMixin(CatalogBase):
    def add_case(self, title: str, external_id: str | None, actor: str) -> Case:
        now = utc_now()
        case = Case(
            title=title,
            external_id=external_id,
            status=OPEN,
            created_at=now,
            created_by=actor,
            updated_at=now,
            updated_by=actor,
        )
        try:
            with self.session() as s:
                s.add(case)
                s.flush()
                s.refresh(case)
        except SAIntegrityError:
            raise ConflictError(f"a case with external id {external_id!r} exists") from None
        return case

    def cases(self, status: str | None = None) -> Sequence[Case]:
        with self.session() as s:
            query = select(Case).order_by(Case.id)
            if status is not None:
                query = query.where(Case.status == status)
            return list(s.scalars(query))

    def get_case(self, case_id: int) -> Case:
        with self.session() as s:
            case = s.get(Case, case_id)
            if case is None:
                raise NotFoundError(f"no case {case_id}")
            return case

    def update_case(
        self,
        case_id: int,
        actor: str,
        *,
        title: str | None = None,
        status: str | None = None,
        external_id: str | None = None,
    ) -> Case:
        """Change what is given; closing stamps ``closed_at``, reopening clears it."""
        now = utc_now()
        try:
            with self.session() as s:
                case = s.get(Case, case_id)
                if case is None:
                    raise NotFoundError(f"no case {case_id}")
                if title is not None:
                    case.title = title
                if external_id is not None:
                    case.external_id = external_id
                if status is not None and status != case.status:
                    case.status = status
                    case.closed_at = now if status == CLOSED else None
                case.updated_at = now
                case.updated_by = actor
                s.flush()
                s.refresh(case)
                return case
        except SAIntegrityError:
            raise ConflictError(f"a case with external id {external_id!r} exists") from None

    def touch_case(self, case_id: int, actor: str) -> None:
        with self.session() as s:
            s.execute(
                update(Case)
                .where(Case.id == case_id)
                .values(updated_at=utc_now(), updated_by=actor)
            )

    def add_case_moment(self, moment: CaseMoment) -> CaseMoment:
        with self.session() as s:
            s.add(moment)
            s.flush()
            s.refresh(moment)
            return moment

    def case_moments(self, case_id: int) -> Sequence[CaseMoment]:
        with self.session() as s:
            query = select(CaseMoment).where(CaseMoment.case_id == case_id)
            return list(s.scalars(query.order_by(CaseMoment.id)))

    def case_moment(self, case_id: int, moment_id: int) -> CaseMoment:
        with self.session() as s:
            moment = s.get(CaseMoment, moment_id)
            if moment is None or moment.case_id != case_id:
                raise NotFoundError(f"case {case_id} has no moment {moment_id}")
            return moment

    def add_case_overlay(self, overlay: CaseOverlay) -> CaseOverlay:
        with self.session() as s:
            s.add(overlay)
            s.flush()
            s.refresh(overlay)
            return overlay

    def case_overlays(self, case_id: int) -> Sequence[CaseOverlay]:
        with self.session() as s:
            query = select(CaseOverlay).where(CaseOverlay.case_id == case_id)
            return list(s.scalars(query.order_by(CaseOverlay.id)))

    # -- legal holds -------------------------------------------------------------------

    def add_holds(self, case_id: int, keys: Iterable[str]) -> list[BlobHold]:
        """Record the case's holds on ``keys`` (a key it already holds is kept as it is;
        one it held before, released, is held again). Returns the rows to apply."""
        wanted = set(keys)
        with self.session() as s:
            rows = {
                h.blob_key: h
                for h in s.scalars(
                    select(BlobHold).where(
                        BlobHold.case_id == case_id, BlobHold.blob_key.in_(sorted(wanted))
                    )
                )
            }
            for key in sorted(wanted):
                row = rows.get(key)
                if row is None:
                    rows[key] = row = BlobHold(case_id=case_id, blob_key=key, placed_at=utc_now())
                    s.add(row)
                elif row.released_at is not None:
                    row.released_at = None
                    row.applied_at = None
            s.flush()
            return [h for h in rows.values() if h.applied_at is None]

    def case_holds(self, case_id: int) -> Sequence[BlobHold]:
        with self.session() as s:
            query = select(BlobHold).where(BlobHold.case_id == case_id)
            return list(s.scalars(query.order_by(BlobHold.blob_key)))

    def unapplied_holds(self, limit: int = 1000) -> Sequence[BlobHold]:
        with self.session() as s:
            query = select(BlobHold).where(
                BlobHold.applied_at.is_(None), BlobHold.released_at.is_(None)
            )
            return list(s.scalars(query.order_by(BlobHold.id).limit(limit)))

    def mark_hold_applied(self, hold_ids: Sequence[int]) -> None:
        with self.session() as s:
            s.execute(
                update(BlobHold).where(BlobHold.id.in_(hold_ids)).values(applied_at=utc_now())
            )

    def due_hold_releases(self, closed_before: datetime, limit: int = 1000) -> Sequence[BlobHold]:
        """Unreleased holds of cases closed before ``closed_before``."""
        with self.session() as s:
            query = (
                select(BlobHold)
                .join(Case, Case.id == BlobHold.case_id)
                .where(
                    BlobHold.released_at.is_(None),
                    Case.status == CLOSED,
                    Case.closed_at <= closed_before,
                )
                .order_by(BlobHold.id)
                .limit(limit)
            )
            return list(s.scalars(query))

    def held_elsewhere(self, blob_key: str, hold_id: int) -> bool:
        """Whether another unreleased hold (of another case) is on the same blob."""
        with self.session() as s:
            query = select(BlobHold.id).where(
                BlobHold.blob_key == blob_key,
                BlobHold.released_at.is_(None),
                BlobHold.id != hold_id,
            )
            return s.scalars(query.limit(1)).first() is not None

    def mark_hold_released(self, hold_id: int) -> None:
        with self.session() as s:
            s.execute(update(BlobHold).where(BlobHold.id == hold_id).values(released_at=utc_now()))

    def held_blob_keys(self) -> set[str]:
        with self.session() as s:
            query = select(BlobHold.blob_key).where(BlobHold.released_at.is_(None))
            return set(s.scalars(query.distinct()))
