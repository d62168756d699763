"""The S3 upload spool belongs to one process (issue 14).

Processes that share a data home spool into directories of their own, so two of them
spooling during an outage keep every entry; a process that dies with blobs spooled
leaves them to whichever process on the data home adopts them next. Real processes, a
real S3 server (moto over HTTP, stopped for the outage) and SIGKILL.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mypy_boto3_s3 import S3Client

from core.settings import Settings
from storage.blobs.factory import open_blob_store
from storage.blobs.spool import SpoolingBlobStore
from tests.support.s3server import MotoS3Server

ROOT = Path(__file__).resolve().parents[1]
BLOBS = 12  # per process

SPOOLER = """
import json, sys
from core.settings import Settings
from storage.blobs.factory import open_blob_store
settings = Settings(_env_file=None, **json.loads(sys.argv[1]))
name = sys.argv[2]
store = open_blob_store(settings)
for n in range(int(sys.argv[3])):
    store.put_bytes(f"streams/{name}/segments/{n:08d}.ts", f"{name} segment {n}".encode())
print(json.dumps({"pending": store.pending(), "dir": str(store.spool_dir)}), flush=True)
if sys.stdin.readline().strip() == "flush":  # S3 is back
    flushed = store.flush(60)
    store.close()
    print(json.dumps({"flushed": flushed, "pending": store.pending()}), flush=True)
"""


def blob(name: str, n: int) -> tuple[str, bytes]:
    return f"streams/{name}/segments/{n:08d}.ts", f"{name} segment {n}".encode()


@contextmanager
def spoolers(settings: Settings, names: list[str]) -> Iterator[list[subprocess.Popen[str]]]:
    fields = settings.model_dump(mode="json")
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SPOOLER, json.dumps(fields), name, str(BLOBS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for name in names
    ]
    try:
        yield processes
    finally:
        for process in processes:
            process.kill()
            process.wait()


def read(process: subprocess.Popen[str]) -> dict[str, object]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"the spooling process ended early (exit {process.poll()})"
    result: dict[str, object] = json.loads(line)
    return result


def versions(client: S3Client, bucket: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts


def test_two_processes_spooling_during_an_outage_keep_every_blob(
    s3_settings: Callable[..., Settings],
    s3_server: MotoS3Server,
    s3_client: S3Client,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    settings = s3_settings(home=tmp_path / "home")
    names = ["recorder", "transcriber"]
    s3_server.stop()
    with spoolers(settings, names) as processes:
        spooled = [read(p) for p in processes]
        assert [s["pending"] for s in spooled] == [BLOBS, BLOBS]
        assert spooled[0]["dir"] != spooled[1]["dir"]
        for directory in (Path(str(s["dir"])) for s in spooled):
            assert directory.parent == settings.spool_dir
            assert len(list((directory / "queue").glob("*.json"))) == BLOBS
        # A third process on the data home leaves the spools of running processes alone.
        third = open_blob_store(settings)
        assert isinstance(third, SpoolingBlobStore) and third.pending() == 0
        third.close()

        s3_server.start()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("flush\n")
            process.stdin.flush()
        done = [read(p) for p in processes]
        assert done == [{"flushed": True, "pending": 0}] * 2
        assert [p.wait(60) for p in processes] == [0, 0]

    expected = dict(blob(name, n) for name in names for n in range(BLOBS))
    assert versions(s3_client, s3_bucket) == dict.fromkeys(expected, 1)  # each exactly once
    for key, data in expected.items():
        assert s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == data
    # Closed with nothing left: no spool directory stays behind.
    assert list(settings.spool_dir.iterdir()) == []


def test_the_spool_of_a_killed_process_is_adopted_and_uploaded_once(
    s3_settings: Callable[..., Settings],
    s3_server: MotoS3Server,
    s3_client: S3Client,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    settings = s3_settings(home=tmp_path / "home")
    s3_server.stop()
    with spoolers(settings, ["killed"]) as (process,):
        left = Path(str(read(process)["dir"]))
        process.kill()  # SIGKILL with every blob still spooled: the lock goes with it
        process.wait()
    assert len(list((left / "queue").glob("*.blob"))) == BLOBS

    store = open_blob_store(settings)
    assert isinstance(store, SpoolingBlobStore)
    try:
        assert store.pending() == BLOBS  # adopted at start
        assert not left.exists()
        key, data = blob("killed", 3)
        assert store.get_bytes(key) == data  # readable while S3 is still down
        s3_server.start()
        assert store.flush(60)
    finally:
        store.close()
    expected = dict(blob("killed", n) for n in range(BLOBS))
    assert versions(s3_client, s3_bucket) == dict.fromkeys(expected, 1)
    for key, data in expected.items():
        assert s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == data
    assert list(settings.spool_dir.iterdir()) == []


def test_the_spool_of_an_earlier_release_is_adopted(
    s3_settings: Callable[..., Settings], s3_client: S3Client, s3_bucket: str, tmp_path: Path
) -> None:
    settings = s3_settings(home=tmp_path / "home")
    # The single spool earlier releases wrote: spool/queue/<seq>.blob and .json.
    queue = settings.spool_dir / "queue"
    queue.mkdir(parents=True)
    keys = [blob("old", n) for n in (2, 0, 1)]  # spool order, not key order
    for seq, (key, data) in enumerate(keys, start=1):
        stem = f"{seq:020d}"
        (queue / f"{stem}.blob").write_bytes(data)
        meta = {"key": key, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        meta["spooled_at"] = "2026-11-30T12:00:00+00:00"
        (queue / f"{stem}.json").write_text(json.dumps(meta))
    store = open_blob_store(settings)
    assert isinstance(store, SpoolingBlobStore)
    try:
        assert store.pending() == 3
        assert list(queue.iterdir()) == []
        assert store.flush(60)
    finally:
        store.close()
    assert versions(s3_client, s3_bucket) == dict.fromkeys((k for k, _ in keys), 1)


ADOPTER = """
import json, sys
from core.settings import Settings
from storage.blobs.factory import open_blob_store
settings = Settings(_env_file=None, **json.loads(sys.argv[1]))
store = open_blob_store(settings)
adopted = store.pending()
flushed = store.flush(60)
store.close()
print(json.dumps({"adopted": adopted, "flushed": flushed}), flush=True)
"""


def test_processes_starting_together_adopt_a_gone_spool_once(
    s3_settings: Callable[..., Settings], s3_client: S3Client, s3_bucket: str, tmp_path: Path
) -> None:
    settings = s3_settings(home=tmp_path / "home")
    queue = settings.spool_dir / "gone-host-4242-00c0ffee" / "queue"  # its lock is free
    queue.mkdir(parents=True)
    keys = [blob("gone", n) for n in range(BLOBS)]
    for seq, (key, data) in enumerate(keys, start=1):
        (queue / f"{seq:020d}.blob").write_bytes(data)
        meta = {"key": key, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        (queue / f"{seq:020d}.json").write_text(json.dumps(meta))
    fields = json.dumps(settings.model_dump(mode="json"))
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", ADOPTER, fields], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        for _ in range(3)
    ]
    reports = [json.loads(p.communicate(timeout=120)[0]) for p in starters]
    assert [p.returncode for p in starters] == [0, 0, 0]
    assert all(r["flushed"] for r in reports)
    assert sum(r["adopted"] for r in reports) == BLOBS  # each blob adopted by one of them
    assert versions(s3_client, s3_bucket) == dict.fromkeys((k for k, _ in keys), 1)
    assert list(settings.spool_dir.iterdir()) == []
