"""Workers claim jobs from the catalog: one worker per job, leases released on death.

Every test runs on SQLite and on PostgreSQL, whose claims take different paths (SQLite's
single write lock, PostgreSQL's ``FOR UPDATE SKIP LOCKED``). PostgreSQL runs when
``LIVEWITNESS_TEST_POSTGRES_URL`` names a database the tests may create schemas in
(``eval "$(.ci/postgres.sh)"`` starts a throwaway one); each test gets a schema of its own,
dropped afterwards.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.errors import StorageError
from core.holders import holder_gone, holder_id
from core.jobs import TRANSCRIBE_JOB
from core.timeutil import utc_now
from storage.catalog import JOBS_QUEUED, Catalog
from storage.catalog.jobs import LeaseHeartbeat
from tests.support.postgres import POSTGRES_SKIP, POSTGRES_URL_VARIABLE, postgres_schema

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


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A catalog URL per database LiveWitness supports; PostgreSQL only where configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
        return
    base = os.environ.get(POSTGRES_URL_VARIABLE)
    if not base:
        pytest.skip(POSTGRES_SKIP)
    with postgres_schema(base) as url:
        yield url


@pytest.fixture
def opened(catalog_url: str) -> Iterator[Catalog]:
    catalog = Catalog(catalog_url)
    yield catalog
    catalog.close()


def add_jobs(catalog: Catalog, jobs: int) -> int:
    stream = catalog.ensure_stream("shop")
    for seq in range(jobs):
        catalog.enqueue(TRANSCRIBE_JOB, stream.id, seq)
    return stream.id


def at_once(script: str, catalog_url: str, names: list[str]) -> list[Any]:
    """Run ``script`` in one Python process per name, all at once; each prints JSON."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, catalog_url, name],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        for name in names
    ]
    outputs = [json.loads(p.communicate(timeout=120)[0]) for p in processes]
    assert all(p.returncode == 0 for p in processes)
    return outputs


def test_two_processes_never_take_the_same_job(catalog_url: str, opened: Catalog) -> None:
    stream_id = add_jobs(opened, 300)
    taken = at_once(CLAIMER, catalog_url, ["worker-0", "worker-1"])
    assert taken[0] and taken[1], "both workers should have had work"
    assert set(taken[0]).isdisjoint(taken[1])
    assert sorted(taken[0] + taken[1]) == list(range(300))
    assert opened.backlog(TRANSCRIBE_JOB) == 0
    jobs = opened.jobs(stream_id)
    assert all(j.status == "done" and j.attempts == 1 and j.rtf == 1.0 for j in jobs)


def test_queuing_a_job_twice_keeps_one(opened: Catalog) -> None:
    stream_id = add_jobs(opened, 1)
    opened.enqueue(TRANSCRIBE_JOB, stream_id, 0)
    assert len(opened.jobs(stream_id)) == 1


def test_a_dead_workers_job_is_released_after_its_lease(opened: Catalog) -> None:
    add_jobs(opened, 1)
    first = opened.claim_job(TRANSCRIBE_JOB, "dies", lease_seconds=0.3)
    assert first is not None
    assert opened.claim_job(TRANSCRIBE_JOB, "other", lease_seconds=60) is None
    time.sleep(0.5)
    second = opened.claim_job(TRANSCRIBE_JOB, "other", lease_seconds=60)
    assert second is not None and second.id == first.id and second.attempts == 2
    # The late worker's result is ignored: the job belongs to "other" now.
    opened.finish_job(first.id, "dies", error="too late")
    opened.finish_job(second.id, "other", audio_seconds=10, rtf=5)
    assert opened.backlog(TRANSCRIBE_JOB) == 0


def test_a_failing_job_is_retried_then_marked_failed(opened: Catalog) -> None:
    stream_id = add_jobs(opened, 1)
    for attempt in range(3):
        job = opened.claim_job(TRANSCRIBE_JOB, "w", 60)
        assert job is not None and job.attempts == attempt + 1
        opened.finish_job(job.id, "w", error="cannot decode", max_attempts=3)
    assert opened.claim_job(TRANSCRIBE_JOB, "w", 60) is None
    (job,) = opened.jobs(stream_id)
    assert job.status == "failed" and job.error == "cannot decode"


def test_a_lease_can_be_renewed_by_its_worker_only(opened: Catalog) -> None:
    add_jobs(opened, 1)
    job = opened.claim_job(TRANSCRIBE_JOB, "w", 0.3)
    assert job is not None
    assert opened.renew_lease(job.id, "w", 60)
    assert not opened.renew_lease(job.id, "intruder", 60)
    time.sleep(0.5)
    assert opened.claim_job(TRANSCRIBE_JOB, "other", 60) is None


def test_queuing_a_job_wakes_a_waiting_worker_of_the_same_process(opened: Catalog) -> None:
    changes = opened.changes
    seen = changes.count(JOBS_QUEUED)
    assert changes.wait(JOBS_QUEUED, seen, timeout=0.05) == seen  # nothing new: timed out
    woke: list[int] = []
    waiter = threading.Thread(target=lambda: woke.append(changes.wait(JOBS_QUEUED, seen, 3600)))
    waiter.start()
    stream_id = opened.ensure_stream("shop").id
    opened.enqueue(TRANSCRIBE_JOB, stream_id, 0)
    waiter.join(60)
    assert not waiter.is_alive() and woke == [seen + 1]
    # A change made before the wait began is not missed: the count already moved on.
    assert changes.wait(JOBS_QUEUED, seen, 3600) == seen + 1
    assert opened.claim_job(TRANSCRIBE_JOB, "w", 60) is not None


LEASE_TAKER = """
import sys, json
from storage.catalog import Catalog
catalog = Catalog(sys.argv[1])
ids = [s.id for s in catalog.list_streams()]
print(json.dumps([i for i in ids if catalog.hold_recording(i, sys.argv[2], 60)]))
"""


def test_a_recording_lease_is_held_renewed_released_and_taken_when_it_runs_out(
    opened: Catalog,
) -> None:
    stream_id = opened.ensure_stream("shop").id
    assert opened.hold_recording(stream_id, "host-a:1:aa", 60)
    assert opened.hold_recording(stream_id, "host-a:1:aa", 60)  # renewed by its holder
    assert not opened.hold_recording(stream_id, "host-b:2:bb", 60)  # held elsewhere
    assert opened.hold_recording(stream_id, "host-b:2:bb", 60, replacing="host-a:1:aa")
    assert opened.stream_by_id(stream_id).recorder == "host-b:2:bb"
    opened.release_recording(stream_id, "host-a:1:aa")  # not its lease any more: no effect
    assert opened.stream_by_id(stream_id).recorder == "host-b:2:bb"
    # A holder that stops renewing (a crashed machine) loses it when the lease runs out.
    assert opened.hold_recording(stream_id, "host-b:2:bb", 0.3)
    assert not opened.hold_recording(stream_id, "host-c:3:cc", 60)
    time.sleep(0.5)
    assert opened.hold_recording(stream_id, "host-c:3:cc", 60)
    opened.release_recording(stream_id, "host-c:3:cc")
    released = opened.stream_by_id(stream_id)
    assert released.recorder is None and released.recorder_lease_until is None
    assert opened.hold_recording(stream_id, "host-a:1:aa", 60)


def test_recorders_asking_at_once_never_both_get_a_stream(
    catalog_url: str, opened: Catalog
) -> None:
    for n in range(100):
        opened.ensure_stream(f"room-{n:03d}")
    held = at_once(LEASE_TAKER, catalog_url, [f"host-{n}:{n}:x" for n in range(3)])
    assert sorted(i for ids in held for i in ids) == sorted(s.id for s in opened.list_streams())
    holders = {s.id: s.recorder for s in opened.list_streams()}
    for n, ids in enumerate(held):
        assert all(holders[i] == f"host-{n}:{n}:x" for i in ids)


# -- short leases, heartbeats and holders that are gone (issue 14) ----------------------

HOLDER = """
import sys, json, time
from core.holders import holder_id
from storage.catalog import Catalog
from storage.catalog.jobs import LeaseHeartbeat
catalog = Catalog(sys.argv[1])
name = holder_id()
job = catalog.claim_job("transcribe", name, 30)
with LeaseHeartbeat(catalog, job, name, 30, interval=0.05) as beat:
    print(json.dumps({"job": job.id, "worker": name}), flush=True)
    while True:  # "decoding" until killed
        time.sleep(0.05)
"""


def test_a_killed_workers_job_is_retaken_at_once_on_the_same_host(
    catalog_url: str, opened: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    add_jobs(opened, 1)
    worker = subprocess.Popen(
        [sys.executable, "-c", HOLDER, catalog_url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert worker.stdout is not None
        held = json.loads(worker.stdout.readline())
        # Alive: its lease holds, also against a worker that checks for gone holders.
        assert opened.claim_job(TRANSCRIBE_JOB, "other", 30, holder_gone=holder_gone) is None
    finally:
        worker.kill()  # SIGKILL: no cleanup, the lease stays in the catalog
        worker.wait()
    (job,) = opened.jobs(opened.get_stream("shop").id)
    assert job.status == "running" and job.worker == held["worker"]
    assert job.lease_until is not None and job.lease_until > utc_now()  # still 30 s to run
    assert opened.claim_job(TRANSCRIBE_JOB, "other", 30) is None  # without the shortcut
    with caplog.at_level(logging.INFO, logger="storage.catalog.jobs"):
        retaken = opened.claim_job(TRANSCRIBE_JOB, "other", 30, holder_gone=holder_gone)
    assert retaken is not None and retaken.id == held["job"]
    assert retaken.worker == "other" and retaken.attempts == 2
    assert f"job {held['job']} " in caplog.text and "retaken by other, attempt 2" in caplog.text
    assert f"its holder {held['worker']} is gone" in caplog.text


def test_a_holder_on_another_host_keeps_its_job_until_the_lease_runs_out(
    opened: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    add_jobs(opened, 1)
    claimed_at = utc_now()
    first = opened.claim_job(TRANSCRIBE_JOB, "far-host:1:aa", 30, now=claimed_at)
    assert first is not None
    later = claimed_at + timedelta(seconds=29)
    assert opened.claim_job(TRANSCRIBE_JOB, "w", 30, holder_gone=holder_gone, now=later) is None
    with caplog.at_level(logging.INFO, logger="storage.catalog.jobs"):
        expired = claimed_at + timedelta(seconds=31)
        second = opened.claim_job(TRANSCRIBE_JOB, "w", 30, holder_gone=holder_gone, now=expired)
    assert second is not None and second.id == first.id and second.attempts == 2
    assert "its holder far-host:1:aa let its lease run out" in caplog.text


def test_a_heartbeat_keeps_the_lease_while_the_job_runs(opened: Catalog) -> None:
    add_jobs(opened, 1)
    job = opened.claim_job(TRANSCRIBE_JOB, "w", 3)
    assert job is not None
    first_lease = opened.jobs(job.stream_id)[0].lease_until
    assert first_lease is not None
    with LeaseHeartbeat(opened, job, "w", 3, interval=0.02) as beat:
        deadline = time.monotonic() + 30
        while beat.renewals < 3:
            assert time.monotonic() < deadline, "the heartbeat never renewed the lease"
            time.sleep(0.02)
    renewed = opened.jobs(job.stream_id)[0].lease_until
    assert renewed is not None and renewed > first_lease
    # Past the first lease the job is still held: the heartbeat moved its end.
    past_first = first_lease + (renewed - first_lease) / 2
    assert opened.claim_job(TRANSCRIBE_JOB, "other", 3, now=past_first) is None
    assert not beat.lost.is_set()


def test_a_heartbeat_that_finds_its_job_taken_stops_and_says_so(
    opened: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    add_jobs(opened, 1)
    job = opened.claim_job(TRANSCRIBE_JOB, "slow", 3)
    assert job is not None
    # The lease ran out (a stalled process): another worker took the job.
    taken = opened.claim_job(TRANSCRIBE_JOB, "other", 30, now=utc_now() + timedelta(seconds=10))
    assert taken is not None and taken.id == job.id
    with (
        caplog.at_level(logging.INFO, logger="storage.catalog.jobs"),
        LeaseHeartbeat(opened, job, "slow", 3, interval=0.02) as beat,
    ):
        assert beat.lost.wait(30)
    assert beat.renewals == 0
    assert f"job {job.id} " in caplog.text and "slow lost its lease" in caplog.text
    assert opened.jobs(job.stream_id)[0].worker == "other"


def test_failed_attempts_are_logged_with_the_job_the_holder_and_the_attempt(
    opened: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    add_jobs(opened, 1)
    with caplog.at_level(logging.INFO, logger="storage.catalog.jobs"):
        job = opened.claim_job(TRANSCRIBE_JOB, "w", 30)
        assert job is not None
        opened.finish_job(job.id, "w", error="cannot decode", max_attempts=2)
        again = opened.claim_job(TRANSCRIBE_JOB, "w2", 30)
        assert again is not None
        opened.finish_job(again.id, "w2", error="cannot decode", max_attempts=2)
    lines = [r.getMessage() for r in caplog.records]
    assert any("claimed by w, attempt 1" in line for line in lines)
    assert any("failed at w, attempt 1 of 2; queued again: cannot decode" in line for line in lines)
    assert any("retried by w2, attempt 2" in line for line in lines)
    assert any("failed at w2, attempt 2 of 2; given up" in line for line in lines)


def test_a_holder_with_this_processs_id_but_not_its_name_is_gone(opened: Catalog) -> None:
    # A restarted container's process has the pid (1) and host name of the one before:
    # a job held under that id but by a name this process never gave out is the dead
    # process's, and is retaken at once.
    add_jobs(opened, 2)
    earlier = f"{socket.gethostname()}:{os.getpid()}:0ld0ld00"
    mine = holder_id()
    assert holder_gone(earlier) and not holder_gone(mine)
    assert opened.claim_job(TRANSCRIBE_JOB, earlier, 30) is not None
    assert opened.claim_job(TRANSCRIBE_JOB, mine, 30) is not None
    retaken = opened.claim_job(TRANSCRIBE_JOB, "w", 30, holder_gone=holder_gone)
    assert retaken is not None and retaken.attempts == 2
    assert {j.worker for j in opened.jobs(retaken.stream_id)} == {"w", mine}


class FlakyCatalog:
    """The injected fault: the catalog cannot be reached for the first renewals."""

    def __init__(self, catalog: Catalog, failures: int) -> None:
        self.catalog = catalog
        self.failures = failures

    def renew_lease(
        self, job_id: int, worker: str, lease_seconds: float, *, now: datetime | None = None
    ) -> bool:
        if self.failures:
            self.failures -= 1
            raise StorageError("cannot reach the catalog")
        return self.catalog.renew_lease(job_id, worker, lease_seconds, now=now)


def test_a_renewal_that_fails_is_logged_and_tried_again(
    opened: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    add_jobs(opened, 1)
    job = opened.claim_job(TRANSCRIBE_JOB, "w", 3)
    assert job is not None
    flaky = FlakyCatalog(opened, failures=2)
    with (
        caplog.at_level(logging.WARNING, logger="storage.catalog.jobs"),
        LeaseHeartbeat(flaky, job, "w", 3, interval=0.02) as beat,
    ):
        deadline = time.monotonic() + 30
        while beat.renewals < 1:
            assert time.monotonic() < deadline, "the heartbeat gave up after a failure"
            time.sleep(0.02)
    assert flaky.failures == 0 and not beat.lost.is_set()
    failed = [r.getMessage() for r in caplog.records if "could not renew" in r.getMessage()]
    assert len(failed) == 2
    assert f"job {job.id} " in failed[0] and "w could not renew its lease, attempt 1" in failed[0]
