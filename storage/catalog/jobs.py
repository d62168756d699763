"""The job queue: queuing, claiming under a lease, renewing and finishing jobs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from core.timeutil import utc_now
from storage.catalog.engine import JOBS_QUEUED, CatalogBase
from storage.models import Job

WAITING = ("queued", "running")  # a job counted in a backlog


class JobsMixin(CatalogBase):
    """Jobs per segment: queued once, claimed by one worker at a time, retried on failure."""

    def enqueue(self, kind: str, stream_id: int, segment_seq: int) -> None:
        """Queue a job once; queuing it again is a no-op."""
        try:
            with self.session() as s:
                exists = s.scalar(
                    select(Job.id).where(
                        Job.kind == kind, Job.stream_id == stream_id, Job.segment_seq == segment_seq
                    )
                )
                if exists is None:
                    s.add(Job(kind=kind, stream_id=stream_id, segment_seq=segment_seq))
        except SAIntegrityError:
            pass  # queued concurrently by another process
        self.changes.mark(JOBS_QUEUED)

    def claim_job(self, kind: str, worker: str, lease_seconds: float) -> Job | None:
        """Take the oldest queued job, or one whose worker's lease ran out; None if none.

        One statement does the choosing and the taking, so two workers never get the same
        job: PostgreSQL skips rows another worker has locked; SQLite runs the UPDATE under
        its single write lock.
        """
        now = utc_now()
        claimable = and_(
            Job.kind == kind,
            or_(Job.status == "queued", and_(Job.status == "running", Job.lease_until < now)),
        )
        oldest = select(Job.id).where(claimable).order_by(Job.id).limit(1)
        if self.engine.dialect.name == "postgresql":
            oldest = oldest.with_for_update(skip_locked=True)
        take = (
            update(Job)
            .where(Job.id == oldest.scalar_subquery(), claimable)
            .values(
                status="running",
                worker=worker,
                lease_until=now + timedelta(seconds=lease_seconds),
                attempts=Job.attempts + 1,
                started_at=now,
                updated_at=now,
            )
            .returning(Job.id)
        )
        with self.session() as s:
            job_id = s.scalar(take)
            return None if job_id is None else s.get(Job, job_id)

    def renew_lease(self, job_id: int, worker: str, lease_seconds: float) -> bool:
        with self.session() as s:
            result = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.worker == worker, Job.status == "running")
                .values(lease_until=utc_now() + timedelta(seconds=lease_seconds))
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def finish_job(
        self,
        job_id: int,
        worker: str,
        *,
        error: str | None = None,
        audio_seconds: float | None = None,
        rtf: float | None = None,
        max_attempts: int = 3,
    ) -> None:
        """Mark a job done, or failed; a failed job is queued again until max_attempts."""
        with self.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.worker != worker:
                return  # our lease ran out and another worker owns it now
            job.finished_at = utc_now()
            job.lease_until = None
            job.error = error
            if error is None:
                job.status = "done"
                job.audio_seconds = audio_seconds
                job.rtf = rtf
            else:
                job.status = "failed" if job.attempts >= max_attempts else "queued"

    def jobs(self, stream_id: int, kind: str | None = None) -> Sequence[Job]:
        with self.session() as s:
            query = select(Job).where(Job.stream_id == stream_id).order_by(Job.segment_seq)
            if kind:
                query = query.where(Job.kind == kind)
            return s.scalars(query).all()

    def backlog(self, kind: str) -> int:
        with self.session() as s:
            return int(
                s.scalar(
                    select(func.count(Job.id)).where(Job.kind == kind, Job.status.in_(WAITING))
                )
                or 0
            )
