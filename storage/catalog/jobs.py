"""The job queue: queuing, claiming under a lease, renewing and finishing jobs.

A worker holds its job under a short lease (``job_lease_seconds``) that a
:class:`LeaseHeartbeat` renews while the job runs. A job is taken again when its lease
runs out (its holder stopped renewing: a dead process, a lost machine) or at once when the
claiming worker can tell that the holder is gone (a process of the same machine that no
longer runs, :func:`core.holders.holder_gone`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import SQLAlchemyError

from core.errors import StorageError
from core.timeutil import utc_now
from storage.catalog.engine import JOBS_QUEUED, CatalogBase
from storage.models import Job

log = logging.getLogger(__name__)

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

    def claim_job(
        self,
        kind: str,
        worker: str,
        lease_seconds: float,
        *,
        holder_gone: Callable[[str], bool] | None = None,
        now: datetime | None = None,
    ) -> Job | None:
        """Take the oldest queued job, or one whose worker's lease ran out or whose worker
        ``holder_gone`` says is gone; None if none.

        One statement does the choosing and the taking, so two workers never get the same
        job: PostgreSQL skips rows another worker has locked; SQLite runs the UPDATE under
        its single write lock. ``now`` is the clock (tests set it).
        """
        now = now or utc_now()
        # Who holds the running jobs now: for the "holder is gone" shortcut and the log
        # line of a retaken job (a handful of rows: one per busy worker).
        with self.session() as s:
            running = {
                row.id: row.worker
                for row in s.execute(
                    select(Job.id, Job.worker).where(Job.kind == kind, Job.status == "running")
                )
            }
        gone = sorted(
            {w for w in running.values() if w and holder_gone is not None and holder_gone(w)}
        )
        taken_over = or_(Job.lease_until.is_(None), Job.lease_until < now)
        if gone:
            taken_over = or_(taken_over, Job.worker.in_(gone))
        claimable = and_(
            Job.kind == kind,
            or_(Job.status == "queued", and_(Job.status == "running", taken_over)),
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
            job = None if job_id is None else s.get(Job, job_id)
        if job is None:
            return None
        where = f"job {job.id} ({kind}, stream {job.stream_id} segment {job.segment_seq})"
        previous = running.get(job.id)
        if previous is not None:
            why = "is gone" if previous in gone else "let its lease run out"
            log.warning(
                "%s retaken by %s, attempt %d: its holder %s %s",
                where, worker, job.attempts, previous, why,
            )  # fmt: skip
        elif job.attempts > 1:
            log.info("%s retried by %s, attempt %d", where, worker, job.attempts)
        else:
            log.info("%s claimed by %s, attempt %d", where, worker, job.attempts)
        return job

    def renew_lease(
        self, job_id: int, worker: str, lease_seconds: float, *, now: datetime | None = None
    ) -> bool:
        """Extend a running job's lease; False when ``worker`` no longer holds the job."""
        now = now or utc_now()
        with self.session() as s:
            result = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.worker == worker, Job.status == "running")
                .values(lease_until=now + timedelta(seconds=lease_seconds))
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
                log.warning(
                    "job %d (%s, stream %d segment %d) failed at %s, attempt %d of %d%s: %s",
                    job.id, job.kind, job.stream_id, job.segment_seq, worker, job.attempts,
                    max_attempts, "; given up" if job.status == "failed" else "; queued again",
                    error,
                )  # fmt: skip

    def jobs(self, stream_id: int, kind: str | None = None) -> Sequence[Job]:
        with self.session() as s:
            query = select(Job).where(Job.stream_id == stream_id).order_by(Job.segment_seq)
            if kind:
                query = query.where(Job.kind == kind)
            return s.scalars(query).all()

    def backlog(self, *kinds: str) -> int:
        """Jobs of these kinds queued or running."""
        with self.session() as s:
            return int(
                s.scalar(
                    select(func.count(Job.id)).where(Job.kind.in_(kinds), Job.status.in_(WAITING))
                )
                or 0
            )

    def oldest_queued(self, kind: str) -> datetime | None:
        """When the longest-waiting queued job of ``kind`` was queued (None: none is)."""
        with self.session() as s:
            return s.scalar(
                select(func.min(Job.created_at)).where(Job.kind == kind, Job.status == "queued")
            )

    def drop_queued(self, kind: str, queued_before: datetime) -> int:
        """Mark the jobs of ``kind`` queued before ``queued_before`` done without doing
        them (no audio decoded): work that is no longer worth doing (stale early pieces,
        transcriber/worker.py). Returns how many."""
        with self.session() as s:
            result = s.execute(
                update(Job)
                .where(Job.kind == kind, Job.status == "queued", Job.created_at < queued_before)
                .values(status="done", finished_at=utc_now(), audio_seconds=0.0)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def release_job(self, job_id: int, worker: str, error: str) -> None:
        """Queue a job again without counting the attempt: it failed for a reason of the
        machine's (a full disk), not of the job's, and must not run out of attempts."""
        with self.session() as s:
            s.execute(
                update(Job)
                .where(Job.id == job_id, Job.worker == worker, Job.status == "running")
                .values(
                    status="queued",
                    lease_until=None,
                    error=error,
                    attempts=Job.attempts - 1,  # a running job was claimed: at least 1
                    updated_at=utc_now(),
                )
            )
        log.warning("job %d released by %s to be retried: %s", job_id, worker, error)


class JobCatalog(Protocol):
    def renew_lease(
        self, job_id: int, worker: str, lease_seconds: float, *, now: datetime | None = None
    ) -> bool: ...


class LeaseHeartbeat:
    """Renews a job's lease every third of it while the job runs (a context manager).

    A renewal that fails (the catalog is unreachable) is logged and tried again at the next
    beat; one that finds the job taken by another worker is logged and ends the beating:
    ``lost`` is then set, and the late result is ignored by ``finish_job``.
    """

    def __init__(
        self,
        catalog: JobCatalog,
        job: Job,
        worker: str,
        lease_seconds: float,
        interval: float | None = None,
    ) -> None:
        self.catalog = catalog
        self.job = job
        self.worker = worker
        self.lease_seconds = lease_seconds
        self.interval = lease_seconds / 3 if interval is None else interval
        self.renewals = 0
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"lease-heartbeat:{job.id}", daemon=True
        )

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        job = self.job
        while not self._stop.wait(self.interval):
            try:
                held = self.catalog.renew_lease(job.id, self.worker, self.lease_seconds)
            except (StorageError, SQLAlchemyError) as exc:
                log.warning(
                    "job %d (stream %d segment %d): %s could not renew its lease, attempt %d:"
                    " %s",
                    job.id, job.stream_id, job.segment_seq, self.worker, job.attempts, exc,
                )  # fmt: skip
                continue
            if not held:
                log.error(
                    "job %d (stream %d segment %d): %s lost its lease to another worker,"
                    " attempt %d",
                    job.id, job.stream_id, job.segment_seq, self.worker, job.attempts,
                )  # fmt: skip
                self.lost.set()
                return
            self.renewals += 1
