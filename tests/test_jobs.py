"""Workers claim jobs from the catalog: one worker per job, leases released on death."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from storage.catalog import Catalog
from storage.chain import TRANSCRIBE_JOB

CLAIMER = """
import sys, json
from storage.catalog import Catalog
catalog = Catalog(sys.argv[1])
taken = []
while (job := catalog.claim_job("transcribe", sys.argv[2], 60)) is not None:
    taken.append(job.segment_seq)
    catalog.finish_job(job.id, sys.argv[2], audio_seconds=1.0, rtf=1.0)
print(json.dumps(taken))
"""


def make_catalog(tmp_path: Path, jobs: int) -> tuple[str, Catalog, int]:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    catalog = Catalog(url)
    stream = catalog.ensure_stream("shop")
    for seq in range(jobs):
        catalog.enqueue(TRANSCRIBE_JOB, stream.id, seq)
    return url, catalog, stream.id


def test_two_processes_never_take_the_same_job(tmp_path: Path) -> None:
    import json

    url, catalog, stream_id = make_catalog(tmp_path, 300)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, url, f"worker-{n}"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        for n in range(2)
    ]
    taken = [json.loads(w.communicate(timeout=120)[0]) for w in workers]
    assert all(w.returncode == 0 for w in workers)
    assert taken[0] and taken[1], "both workers should have had work"
    assert set(taken[0]).isdisjoint(taken[1])
    assert sorted(taken[0] + taken[1]) == list(range(300))
    assert catalog.backlog(TRANSCRIBE_JOB) == 0
    jobs = catalog.jobs(stream_id)
    assert all(j.status == "done" and j.attempts == 1 and j.rtf == 1.0 for j in jobs)


def test_a_dead_workers_job_is_released_after_its_lease(tmp_path: Path) -> None:
    _, catalog, _ = make_catalog(tmp_path, 1)
    first = catalog.claim_job(TRANSCRIBE_JOB, "dies", lease_seconds=0.3)
    assert first is not None
    assert catalog.claim_job(TRANSCRIBE_JOB, "other", lease_seconds=60) is None
    time.sleep(0.5)
    second = catalog.claim_job(TRANSCRIBE_JOB, "other", lease_seconds=60)
    assert second is not None and second.id == first.id and second.attempts == 2
    # The late worker's result is ignored: the job belongs to "other" now.
    catalog.finish_job(first.id, "dies", error="too late")
    catalog.finish_job(second.id, "other", audio_seconds=10, rtf=5)
    assert catalog.backlog(TRANSCRIBE_JOB) == 0


def test_a_failing_job_is_retried_then_marked_failed(tmp_path: Path) -> None:
    _, catalog, stream_id = make_catalog(tmp_path, 1)
    for attempt in range(3):
        job = catalog.claim_job(TRANSCRIBE_JOB, "w", 60)
        assert job is not None and job.attempts == attempt + 1
        catalog.finish_job(job.id, "w", error="cannot decode", max_attempts=3)
    assert catalog.claim_job(TRANSCRIBE_JOB, "w", 60) is None
    (job,) = catalog.jobs(stream_id)
    assert job.status == "failed" and job.error == "cannot decode"


def test_a_lease_can_be_renewed_by_its_worker_only(tmp_path: Path) -> None:
    _, catalog, _ = make_catalog(tmp_path, 1)
    job = catalog.claim_job(TRANSCRIBE_JOB, "w", 0.3)
    assert job is not None
    assert catalog.renew_lease(job.id, "w", 60)
    assert not catalog.renew_lease(job.id, "intruder", 60)
    time.sleep(0.5)
    assert catalog.claim_job(TRANSCRIBE_JOB, "other", 60) is None
