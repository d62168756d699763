"""A transcription worker killed mid-job: its job is retaken at once (issue 14).

A real ``TranscriptionWorker`` in a process of its own claims a real segment and hangs in
the decoder (the injected fault: a decode that never ends) while its heartbeat renews the
lease; then it is killed with SIGKILL. Another worker on this host retakes the job at
once, long before the lease would run out; only the catalog's lease and holder state is
asserted, never how long anything took.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from core.holders import holder_gone
from core.jobs import TRANSCRIBE_JOB
from core.settings import Settings
from storage.stores import open_stores
from tests.support.cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
LEASE = 3.0  # seconds: the shortest allowed, so the heartbeat beats every second

HUNG_WORKER = """
import sys, time
from core.settings import Settings
from storage.stores import open_stores
from transcriber.worker import TranscriptionWorker

class HungDecoder:  # the fault: decoding never ends
    name = "hung"
    def transcribe(self, audio, options):
        print("decoding", flush=True)
        while True:
            time.sleep(1)

lease = float(sys.argv[2])
stores = open_stores(Settings(_env_file=None, home=sys.argv[1], job_lease_seconds=lease))
worker = TranscriptionWorker(stores, HungDecoder())
print(worker.name, flush=True)
worker.run_once()
"""


def test_a_killed_worker_keeps_its_lease_alive_then_loses_its_job_at_once(
    home: Path, test_video: Path
) -> None:
    result = run_cli(
        home, "ingest", str(test_video), "--stream", "shop", "--segment-seconds", "60",
        "--started-at", "2026-11-20T20:00:00+08:00", "--no-transcribe",
        LIVEWITNESS_SPEECH_CHUNKS="false",  # the segment decoded whole: one job
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    worker = subprocess.Popen(
        [sys.executable, "-c", HUNG_WORKER, str(home), str(LEASE)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    stores = open_stores(Settings(_env_file=None, home=home))  # type: ignore[call-arg]
    try:
        assert worker.stdout is not None
        name = worker.stdout.readline().strip()
        assert worker.stdout.readline().strip() == "decoding"
        stream_id = stores.catalog.get_stream("shop").id
        (job,) = stores.catalog.jobs(stream_id)  # one segment, one job
        assert job.status == "running" and job.worker == name
        assert job.lease_until is not None
        first_lease = job.lease_until
        # The heartbeat moves the lease on while the decoder runs.
        deadline = time.monotonic() + 60
        while (renewed := stores.catalog.jobs(stream_id)[0].lease_until) == first_lease:
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.1)
        assert renewed is not None and renewed > first_lease
        # Alive past its first lease's end: nobody may take the job.
        assert not holder_gone(name)
        later = first_lease + (renewed - first_lease) / 2
        claim = stores.catalog.claim_job
        assert claim(TRANSCRIBE_JOB, "other", 30, holder_gone=holder_gone, now=later) is None

        worker.send_signal(signal.SIGKILL)
        worker.wait()
        (held,) = stores.catalog.jobs(stream_id)
        assert held.status == "running" and held.worker == name
        assert held.lease_until is not None
        # Still within the dead worker's lease: without the shortcut the job waits for
        # it; with it, a worker on this host takes the job at once.
        within = held.lease_until - timedelta(seconds=0.5)
        assert claim(TRANSCRIBE_JOB, "other", 30, now=within) is None
        retaken = claim(TRANSCRIBE_JOB, "other", 30, holder_gone=holder_gone, now=within)
        assert retaken is not None and retaken.id == job.id
        assert retaken.worker == "other" and retaken.attempts == 2
    finally:
        worker.kill()
        worker.wait()
        stores.close()
