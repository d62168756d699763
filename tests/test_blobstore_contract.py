"""One contract for every BlobStore, plus what only S3 and the spool can promise.

The contract runs against the local directory store, S3 (moto's server over real HTTP)
and the spool wrapping S3. S3 outages are real too: the moto server is stopped, so the
port refuses connections, and started again with its objects kept.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError
from mypy_boto3_s3 import S3Client

from core.errors import (
    ConfigError,
    ImmutableBlobError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    StorageUnavailableError,
)
from core.settings import Settings
from storage.blobs.local import LocalBlobStore
from storage.blobs.protocol import BlobInfo, BlobStore, sha256_bytes
from storage.blobs.s3 import S3BlobStore
from storage.blobs.spool import SpoolingBlobStore
from tests.support.s3server import MotoS3Server

SettingsFactory = Callable[..., Settings]

SEGMENT = "streams/shop-1/segments/00000001.ts"


def _s3_store(make_settings: SettingsFactory, **overrides: Any) -> S3BlobStore:
    # Tiny backoff: tests wait for real outages, not for the production pacing.
    return S3BlobStore.from_settings(make_settings(**overrides), backoff_seconds=0.01)


@pytest.fixture(params=["local", "s3", "spool"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "blobs")
        return
    s3 = _s3_store(request.getfixturevalue("s3_settings"))
    if request.param == "s3":
        yield s3
        return
    spool = SpoolingBlobStore(s3, tmp_path / "spool", retry_seconds=0.05)
    yield spool
    spool.close()
    # With S3 up the whole time nothing may have been spooled.
    assert spool.pending() == 0


# -- the contract ----------------------------------------------------------------------


def test_put_bytes_round_trip(store: BlobStore) -> None:
    data = b"\x00\x01 segment bytes \xff"
    info = store.put_bytes(SEGMENT, data)
    assert info == BlobInfo(key=SEGMENT, size=len(data), sha256=sha256_bytes(data))
    assert store.get_bytes(SEGMENT) == data


def test_put_file_round_trip(store: BlobStore, tmp_path: Path) -> None:
    # Larger than one read chunk, so streaming code paths run more than once.
    data = os.urandom(3 * (1 << 20) + 17)
    source = tmp_path / "segment.ts"
    source.write_bytes(data)
    info = store.put_file(SEGMENT, source, sha256_bytes(data))
    assert info == BlobInfo(key=SEGMENT, size=len(data), sha256=sha256_bytes(data))
    dest = tmp_path / "copy.ts"
    store.download(SEGMENT, dest)
    assert dest.read_bytes() == data
    assert store.get_bytes(SEGMENT) == data


def test_stat_reports_size_and_sha256(store: BlobStore) -> None:
    data = b"x" * 1234
    store.put_bytes(SEGMENT, data)
    assert store.stat(SEGMENT) == BlobInfo(SEGMENT, 1234, hashlib.sha256(data).hexdigest())
    assert store.stat("streams/shop-1/segments/00000002.ts") is None


def test_same_bytes_again_is_a_no_op(store: BlobStore, tmp_path: Path) -> None:
    first = store.put_bytes(SEGMENT, b"same")
    assert store.put_bytes(SEGMENT, b"same") == first
    source = tmp_path / "same.ts"
    source.write_bytes(b"same")
    assert store.put_file(SEGMENT, source, sha256_bytes(b"same")) == first
    assert list(store.list("streams/")) == [SEGMENT]


def test_other_bytes_under_a_stored_key_are_refused(store: BlobStore, tmp_path: Path) -> None:
    store.put_bytes(SEGMENT, b"original")
    with pytest.raises(ImmutableBlobError):
        store.put_bytes(SEGMENT, b"tampered")
    source = tmp_path / "tampered.ts"
    source.write_bytes(b"tampered")
    with pytest.raises(ImmutableBlobError):
        store.put_file(SEGMENT, source, sha256_bytes(b"tampered"))
    assert store.get_bytes(SEGMENT) == b"original"


def test_missing_key_is_not_found(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        store.get_bytes("streams/nope/segments/00000001.ts")
    dest = tmp_path / "out.ts"
    with pytest.raises(NotFoundError):
        store.download("streams/nope/segments/00000001.ts", dest)
    assert not dest.exists()


def test_list_is_sorted_and_filtered_by_prefix(store: BlobStore) -> None:
    keys = [
        "streams/b/segments/00000001.ts",
        "streams/a/segments/00000010.ts",
        "streams/ab/segments/00000001.ts",
        "streams/a/manifest.jsonl",
        "streams/a/segments/00000002.ts",
        "other/a/x",
    ]
    for key in keys:
        store.put_bytes(key, key.encode())
    assert list(store.list("streams/a/")) == [
        "streams/a/manifest.jsonl",
        "streams/a/segments/00000002.ts",
        "streams/a/segments/00000010.ts",
    ]
    # A prefix is a string prefix, not a directory.
    assert list(store.list("streams/a")) == [
        "streams/a/manifest.jsonl",
        "streams/a/segments/00000002.ts",
        "streams/a/segments/00000010.ts",
        "streams/ab/segments/00000001.ts",
    ]
    assert list(store.list("")) == sorted(keys)
    assert list(store.list("streams/c/")) == []


def test_put_file_checks_the_given_sha256(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "segment.ts"
    source.write_bytes(b"real bytes")
    with pytest.raises(StorageError):
        store.put_file(SEGMENT, source, sha256_bytes(b"other bytes"))
    assert store.stat(SEGMENT) is None


@pytest.mark.parametrize("key", ["", "/abs/key", "a//b", "a/../b", "./a", "a/", ".."])
def test_invalid_keys_are_refused(store: BlobStore, key: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        store.put_bytes(key, b"data")
    with pytest.raises(InvalidInputError):
        store.get_bytes(key)
    with pytest.raises(InvalidInputError):
        store.stat(key)
    with pytest.raises(InvalidInputError):
        store.download(key, tmp_path / "out")


def test_hold_and_release(store: BlobStore) -> None:
    store.put_bytes(SEGMENT, b"evidence")
    assert not store.held(SEGMENT)
    store.hold(SEGMENT)
    store.hold(SEGMENT)  # again: a no-op
    assert store.held(SEGMENT)
    assert list(store.list("")) == [SEGMENT]  # a hold is not a blob
    store.release(SEGMENT)
    assert not store.held(SEGMENT)
    store.release(SEGMENT)  # not held: a no-op
    assert store.get_bytes(SEGMENT) == b"evidence"


def test_holding_a_missing_blob_is_not_found(store: BlobStore) -> None:
    with pytest.raises(NotFoundError):
        store.hold("streams/nope/segments/00000001.ts")
    assert not store.held("streams/nope/segments/00000001.ts")
    store.release("streams/nope/segments/00000001.ts")


# -- S3 only ---------------------------------------------------------------------------


def _head(client: S3Client, bucket: str, key: str) -> dict[str, Any]:
    return dict(client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"))


@pytest.mark.parametrize("mode", ["compliance", "governance"])
def test_object_lock_retention_blocks_deleting_the_version(
    s3_settings: SettingsFactory, s3_client: S3Client, s3_bucket: str, mode: str
) -> None:
    store = _s3_store(s3_settings, object_lock_mode=mode, object_lock_days=1)
    store.put_bytes(SEGMENT, b"evidence")
    head = _head(s3_client, s3_bucket, SEGMENT)
    # moto 5.2.5 does not implement GetObjectRetention, so read the retention from
    # HeadObject, which reports the same stored lock fields.
    assert head["ObjectLockMode"] == mode.upper()
    expected_until = datetime.now(UTC) + timedelta(days=1)
    assert abs(head["ObjectLockRetainUntilDate"] - expected_until) < timedelta(minutes=5)
    with pytest.raises(ClientError) as refused:
        s3_client.delete_object(Bucket=s3_bucket, Key=SEGMENT, VersionId=head["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert store.get_bytes(SEGMENT) == b"evidence"


def test_without_object_lock_the_version_can_be_deleted(
    s3_settings: SettingsFactory, s3_client: S3Client, s3_bucket: str
) -> None:
    # The control for the test above: the refusal comes from our retention, not the bucket.
    store = _s3_store(s3_settings)
    store.put_bytes(SEGMENT, b"evidence")
    head = _head(s3_client, s3_bucket, SEGMENT)
    assert "ObjectLockMode" not in head
    s3_client.delete_object(Bucket=s3_bucket, Key=SEGMENT, VersionId=head["VersionId"])
    assert store.stat(SEGMENT) is None


def test_legal_hold_is_set_when_configured(
    s3_settings: SettingsFactory, s3_client: S3Client, s3_bucket: str
) -> None:
    store = _s3_store(s3_settings, object_lock_legal_hold=True)
    store.put_bytes(SEGMENT, b"evidence")
    hold = s3_client.get_object_legal_hold(Bucket=s3_bucket, Key=SEGMENT)
    assert hold["LegalHold"]["Status"] == "ON"
    version = _head(s3_client, s3_bucket, SEGMENT)["VersionId"]
    with pytest.raises(ClientError):
        s3_client.delete_object(Bucket=s3_bucket, Key=SEGMENT, VersionId=version)


def test_a_held_version_cannot_be_deleted_until_released(
    s3_settings: SettingsFactory, s3_client: S3Client, s3_bucket: str
) -> None:
    store = _s3_store(s3_settings)
    store.put_bytes(SEGMENT, b"evidence")
    version = _head(s3_client, s3_bucket, SEGMENT)["VersionId"]
    store.hold(SEGMENT)
    hold = s3_client.get_object_legal_hold(Bucket=s3_bucket, Key=SEGMENT, VersionId=version)
    assert hold["LegalHold"]["Status"] == "ON"
    with pytest.raises(ClientError) as refused:
        s3_client.delete_object(Bucket=s3_bucket, Key=SEGMENT, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    store.release(SEGMENT)
    s3_client.delete_object(Bucket=s3_bucket, Key=SEGMENT, VersionId=version)
    assert store.stat(SEGMENT) is None


def test_hold_on_a_bucket_without_object_lock_is_a_config_error(
    s3_settings: SettingsFactory, s3_client: S3Client
) -> None:
    bucket = f"lw-nolock-{os.urandom(6).hex()}"
    s3_client.create_bucket(Bucket=bucket)
    store = _s3_store(s3_settings, s3_bucket=bucket)
    store.put_bytes(SEGMENT, b"evidence")
    with pytest.raises(ConfigError, match="Object Lock"):
        store.hold(SEGMENT)
    assert not store.held(SEGMENT)


def test_upload_carries_the_sha256_checksum(
    s3_settings: SettingsFactory, s3_client: S3Client, s3_bucket: str
) -> None:
    data = b"checked by the server"
    _s3_store(s3_settings).put_bytes(SEGMENT, data)
    head = _head(s3_client, s3_bucket, SEGMENT)
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_stat_hashes_objects_stored_without_sha256(
    s3_settings: SettingsFactory, s3_client: S3Client, s3_bucket: str
) -> None:
    data = b"uploaded by another tool"
    s3_client.put_object(Bucket=s3_bucket, Key=SEGMENT, Body=data)
    assert "ChecksumSHA256" not in _head(s3_client, s3_bucket, SEGMENT)
    info = _s3_store(s3_settings).stat(SEGMENT)
    assert info == BlobInfo(SEGMENT, len(data), sha256_bytes(data))


def test_conditional_put_refuses_a_racing_writer(
    s3_settings: SettingsFactory, s3_client: S3Client, s3_bucket: str
) -> None:
    # Another writer stores the key between our head and our put.
    store = _s3_store(s3_settings)

    def race(**_: Any) -> None:
        s3_client.put_object(Bucket=s3_bucket, Key=SEGMENT, Body=b"theirs")

    store.client.meta.events.register_first("before-call.s3.PutObject", race)
    with pytest.raises(ImmutableBlobError):
        store.put_bytes(SEGMENT, b"ours")
    assert s3_client.get_object(Bucket=s3_bucket, Key=SEGMENT)["Body"].read() == b"theirs"


def test_prefix_scopes_keys(
    s3_settings: SettingsFactory, s3_client: S3Client, s3_bucket: str
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="outside/x", Body=b"not ours")
    store = _s3_store(s3_settings, s3_prefix="tenant-a")
    store.put_bytes(SEGMENT, b"ours")
    assert _head(s3_client, s3_bucket, f"tenant-a/{SEGMENT}")["ContentLength"] == 4
    assert list(store.list("")) == [SEGMENT]


def test_list_follows_pagination(s3_settings: SettingsFactory) -> None:
    store = _s3_store(s3_settings)
    store.page_size = 2
    calls: list[str] = []
    store.client.meta.events.register(
        "before-call.s3.ListObjectsV2", lambda **_: calls.append("list")
    )
    keys = [f"streams/s/segments/{n:08d}.ts" for n in (5, 1, 4, 2, 3)]
    for key in keys:
        store.put_bytes(key, key.encode())
    assert list(store.list("streams/")) == sorted(keys)
    assert len(calls) == 3


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def test_throttling_is_retried_with_backoff(s3_settings: SettingsFactory) -> None:
    delays: list[float] = []
    store = S3BlobStore.from_settings(
        s3_settings(upload_attempts=4), backoff_seconds=0.01, sleep=delays.append
    )
    throttled = 2

    # A before-send handler that returns a response short-circuits the real request.
    def slow_down(request: Any, **_: Any) -> Any:
        nonlocal throttled
        if request.method != "PUT" or throttled == 0:
            return None
        throttled -= 1
        body = b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
        return AWSResponse(request.url, 503, HTTPHeaders(), _Raw(body))

    store.client.meta.events.register_first("before-send.s3.PutObject", slow_down)
    store.put_bytes(SEGMENT, b"eventually")
    assert delays == [0.01, 0.02]
    assert store.get_bytes(SEGMENT) == b"eventually"


def test_client_errors_are_not_retried(s3_settings: SettingsFactory, s3_client: S3Client) -> None:
    delays: list[float] = []
    missing = S3BlobStore.from_settings(
        s3_settings(s3_bucket="no-such-bucket-here"), sleep=delays.append
    )
    with pytest.raises(ConfigError):
        missing.put_bytes(SEGMENT, b"data")
    # Retention asked of a bucket without Object Lock: S3 answers 400 InvalidRequest.
    s3_client.create_bucket(Bucket="lw-unlocked-bucket-test")
    unlocked = S3BlobStore.from_settings(
        s3_settings(
            s3_bucket="lw-unlocked-bucket-test", object_lock_mode="compliance", object_lock_days=1
        ),
        sleep=delays.append,
    )
    with pytest.raises(StorageError) as err:
        unlocked.put_bytes(SEGMENT, b"data")
    assert not isinstance(err.value, StorageUnavailableError)
    assert delays == []


def test_outage_is_reported_fast_as_unavailable(
    s3_settings: SettingsFactory, s3_server: MotoS3Server
) -> None:
    delays: list[float] = []
    store = S3BlobStore.from_settings(
        s3_settings(upload_attempts=3), backoff_seconds=0.01, sleep=delays.append
    )
    sends: list[str] = []
    store.client.meta.events.register("before-send.s3", lambda **_: sends.append("send"))
    s3_server.stop()
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as err:
        store.put_bytes(SEGMENT, b"data")
    assert time.monotonic() - started < 5
    # Exactly `upload_attempts` requests: botocore does not retry on its own.
    assert len(sends) == 3
    assert delays == [0.01, 0.02]
    assert "\n" not in str(err.value)
    with pytest.raises(StorageUnavailableError):
        store.get_bytes(SEGMENT)


def test_ensure_bucket_creates_a_locked_bucket(
    s3_settings: SettingsFactory, s3_client: S3Client
) -> None:
    store = _s3_store(s3_settings, s3_bucket="lw-ensure-bucket-test")
    store.ensure_bucket(object_lock=True)
    store.ensure_bucket(object_lock=True)  # idempotent
    conf = s3_client.get_object_lock_configuration(Bucket="lw-ensure-bucket-test")
    assert conf["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    plain = _s3_store(s3_settings, s3_bucket="lw-ensure-plain-test")
    plain.ensure_bucket(object_lock=False)
    with pytest.raises(ConfigError):
        plain.ensure_bucket(object_lock=True)


# -- the spool -------------------------------------------------------------------------


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _stored_sha256(client: S3Client, bucket: str, key: str) -> str:
    checksum = _head(client, bucket, key)["ChecksumSHA256"]
    return base64.b64decode(checksum).hex()


def test_outage_spools_and_flush_uploads(
    s3_settings: SettingsFactory,
    s3_server: MotoS3Server,
    s3_client: S3Client,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    spool = SpoolingBlobStore(_s3_store(s3_settings), tmp_path / "spool", retry_seconds=0.05)
    try:
        before = spool.put_bytes("streams/s/segments/00000001.ts", b"before the outage")
        assert spool.pending() == 0

        s3_server.stop()
        key2, data2 = "streams/s/segments/00000002.ts", b"during the outage"
        key3, data3 = "streams/s/segments/00000003.ts", os.urandom(2 * (1 << 20))
        source = tmp_path / "segment3.ts"
        source.write_bytes(data3)
        info2 = spool.put_bytes(key2, data2)
        info3 = spool.put_file(key3, source, sha256_bytes(data3))
        assert info2 == BlobInfo(key2, len(data2), sha256_bytes(data2))
        assert info3 == BlobInfo(key3, len(data3), sha256_bytes(data3))
        assert spool.pending() == 2

        # Spooled blobs are readable while S3 is down, and still immutable.
        assert spool.get_bytes(key2) == data2
        assert spool.stat(key3) == info3
        copy = tmp_path / "copy.ts"
        spool.download(key3, copy)
        assert copy.read_bytes() == data3
        assert spool.put_bytes(key2, data2) == info2
        with pytest.raises(ImmutableBlobError):
            spool.put_bytes(key2, b"something else")
        # Listing needs S3 as well; half a listing would hide evidence, so it fails.
        with pytest.raises(StorageUnavailableError):
            list(spool.list("streams/"))
        assert spool.flush(timeout=0.2) is False

        s3_server.start()
        assert spool.flush(timeout=10)
        assert spool.pending() == 0
        for key, data in ((key2, data2), (key3, data3)):
            assert _stored_sha256(s3_client, s3_bucket, key) == sha256_bytes(data)
            assert s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == data
        assert list(spool.list("streams/")) == [before.key, key2, key3]
        assert list((tmp_path / "spool").rglob("*.blob")) == []
    finally:
        spool.close()


def test_uploader_drains_without_flush(
    s3_settings: SettingsFactory, s3_server: MotoS3Server, s3_bucket: str, tmp_path: Path
) -> None:
    s3 = _s3_store(s3_settings)
    spool = SpoolingBlobStore(s3, tmp_path / "spool", retry_seconds=0.05)
    try:
        s3_server.stop()
        spool.put_bytes(SEGMENT, b"spooled")
        assert spool.pending() == 1
        s3_server.start()
        assert _wait_until(lambda: spool.pending() == 0)
        assert s3.stat(SEGMENT) == BlobInfo(SEGMENT, 7, sha256_bytes(b"spooled"))
    finally:
        spool.close()


def test_a_new_instance_resumes_an_old_spool_in_order(
    s3_settings: SettingsFactory, s3_server: MotoS3Server, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    s3_server.stop()
    first = SpoolingBlobStore(_s3_store(s3_settings), spool_dir, retry_seconds=0.05)
    keys = ["streams/s/z.ts", "streams/s/a.ts", "streams/s/m.ts"]  # spool order, unsorted
    for key in keys:
        first.put_bytes(key, key.encode())
    assert first.pending() == 3
    first.close()  # the process ends with S3 still down

    s3_server.start()
    s3 = _s3_store(s3_settings)
    assert s3.stat(keys[0]) is None
    uploaded: list[str] = []
    s3.client.meta.events.register(
        "before-parameter-build.s3.PutObject", lambda params, **_: uploaded.append(params["Key"])
    )
    second = SpoolingBlobStore(s3, spool_dir, retry_seconds=0.05)
    try:
        assert second.pending() == 3
        assert second.flush(timeout=10)
        assert uploaded == keys
        for key in keys:
            assert s3.stat(key) == BlobInfo(key, len(key), sha256_bytes(key.encode()))
    finally:
        second.close()


def test_interrupted_spool_writes_are_discarded_on_start(
    s3_settings: SettingsFactory, tmp_path: Path
) -> None:
    queue = tmp_path / "spool" / "queue"
    queue.mkdir(parents=True)
    (queue / ".tmp-abc").write_bytes(b"half written")
    (queue / "00000000000000000007.blob").write_bytes(b"no metadata yet")
    spool = SpoolingBlobStore(_s3_store(s3_settings), tmp_path / "spool")
    try:
        assert spool.pending() == 0
        assert list(queue.iterdir()) == []
    finally:
        spool.close()


def test_spooled_blob_conflicting_with_s3_is_kept_aside(
    s3_settings: SettingsFactory, s3_server: MotoS3Server, tmp_path: Path
) -> None:
    s3 = _s3_store(s3_settings)
    spool = SpoolingBlobStore(s3, tmp_path / "spool", retry_seconds=0.05)
    try:
        s3.put_bytes(SEGMENT, b"in S3")
        s3_server.stop()
        spool.put_bytes(SEGMENT, b"conflicting")  # S3 cannot be asked, so it spools
        assert spool.pending() == 1
        s3_server.start()
        assert spool.flush(timeout=10)
        assert spool.get_bytes(SEGMENT) == b"in S3"
        rejected = spool.spool_dir / "rejected"
        assert b"conflicting" in [p.read_bytes() for p in rejected.glob("*.blob")]
    finally:
        spool.close()
