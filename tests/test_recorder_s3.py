"""Recording into a real S3 server (moto over HTTP) that goes down for 20 s."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mypy_boto3_s3 import S3Client

from core.settings import Settings
from tests.support.chain import assert_no_unexplained_holes, chain_of
from tests.support.cli import LIVEWITNESS, cli_env, run_cli
from tests.support.livesource import LiveHlsSource
from tests.support.s3server import MotoS3Server

pytestmark = pytest.mark.slow


def s3_env(settings: Settings) -> dict[str, str]:
    return {
        "LIVEWITNESS_BLOB_BACKEND": "s3",
        "LIVEWITNESS_S3_ENDPOINT_URL": str(settings.s3_endpoint_url),
        "LIVEWITNESS_S3_BUCKET": settings.s3_bucket,
        "LIVEWITNESS_S3_REGION": settings.s3_region,
        "LIVEWITNESS_S3_ACCESS_KEY_ID": str(settings.s3_access_key_id),
        "LIVEWITNESS_S3_SECRET_ACCESS_KEY": str(settings.s3_secret_access_key),
        "LIVEWITNESS_OBJECT_LOCK_MODE": "compliance",
        "LIVEWITNESS_OBJECT_LOCK_DAYS": "1",
        "LIVEWITNESS_UPLOAD_ATTEMPTS": "2",
        "LIVEWITNESS_SPOOL_RETRY_SECONDS": "0.5",
    }


def test_s3_outage_of_twenty_seconds_loses_no_segment(
    home: Path,
    live_source: LiveHlsSource,
    s3_server: MotoS3Server,
    s3_client: S3Client,
    s3_settings: Callable[..., Settings],
) -> None:
    env = s3_env(s3_settings())
    recorder = subprocess.Popen(
        [LIVEWITNESS, "record", live_source.url, "--stream", "s3-live"]
        + ["--segment-seconds", "4", "--max-duration", "44"],
        env=cli_env(home, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    bucket = env["LIVEWITNESS_S3_BUCKET"]

    def in_s3(prefix: str) -> list[str]:
        page = s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for o in page.get("Contents", []))

    deadline = time.monotonic() + 40
    while len(in_s3("streams/s3-live/segments/")) < 2:
        assert time.monotonic() < deadline, "no segment reached S3"
        time.sleep(0.5)
    s3_server.stop()
    time.sleep(20)
    spooled = [p for p in (home / "spool").rglob("*.json") if p.is_file()]
    s3_server.start()
    _, errors = recorder.communicate(timeout=120)
    assert recorder.returncode == 0, errors
    assert spooled, "segments should have waited in the spool"

    segments, entries = chain_of(home, "s3-live")
    assert len(segments) >= 9
    stored = in_s3("streams/s3-live/")
    for segment in segments:
        assert segment.blob_key in stored
        head = s3_client.head_object(Bucket=bucket, Key=segment.blob_key)
        assert head["ObjectLockMode"] == "COMPLIANCE"
    for entry in entries:
        assert entry.blob_key in stored
    assert_no_unexplained_holes(entries)
    assert not [p for p in (home / "spool").rglob("*") if p.is_file() and "rejected" not in str(p)]
    result = run_cli(home, "verify", "--stream", "s3-live", **env)
    assert result.returncode == 0, result.stderr
    assert f"{len(segments)} segments" in result.stdout


def test_the_server_refuses_to_delete_a_locked_segment(
    home: Path, test_video: Path, s3_client: S3Client, s3_settings: Callable[..., Settings]
) -> None:
    env = s3_env(s3_settings())
    # A file is imported with ingest (record refuses a file as live, issue 13).
    result = run_cli(
        home, "ingest", str(test_video), "--stream", "locked", "--segment-seconds", "10",
        "--started-at", "2026-11-20T12:00:00Z", "--no-transcribe", **env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    bucket = env["LIVEWITNESS_S3_BUCKET"]
    key = "streams/locked/segments/00000000.ts"
    version = s3_client.head_object(Bucket=bucket, Key=key)["VersionId"]
    with pytest.raises(s3_client.exceptions.ClientError) as refused:
        s3_client.delete_object(Bucket=bucket, Key=key, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert s3_client.head_object(Bucket=bucket, Key=key, VersionId=version)["ContentLength"] > 0
    assert run_cli(home, "verify", "--stream", "locked", **env).returncode == 0
