"""Secrets and traces (issue 14): stream credentials only for admins and redacted
everywhere else (API, audit log, logs), every read of evidence audited, a data home
private to the service user, and webhook secrets that a copy of the catalog does not
give away. Real HTTP on 127.0.0.1, real files, a real ``livewitness`` process."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from compliance.alerts import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookNotifier,
    verify_signature,
)
from core.errors import ConfigError
from core.redact import redact_source, redact_text
from core.settings import Settings
from core.timeutil import iso
from recorder.supervisor import RecordingSupervisor
from storage.audit import AuditLog, verify_audit
from storage.catalog import Catalog
from storage.stores import Stores, open_stores
from storage.webhook_secrets import KEY_NAME, SEALED_PREFIX
from tests.support.apiserver import ApiServer, running_api
from tests.support.cli import cli_in_process, run_cli
from tests.support.media import make_test_video
from tests.support.moments import T0, record
from tests.support.searchdata import SHOP, add_stream
from tests.support.webhook_receiver import Received, WebhookReceiver

PASSWORD = "hunter22-pass"
STREAM_KEY = "sk_live_0123456789"
TOKEN = "tok_987654321"
SOURCE = f"rtmp://publisher:{PASSWORD}@1.1.1.1:1935/live/{STREAM_KEY}?token={TOKEN}"
SECRETS = (PASSWORD, STREAM_KEY, TOKEN)
# What ffmpeg says when the server refuses the key: the URL, and the key alone.
FFMPEG_ERROR = (
    f"[rtmp @ 0x55d0] Server error: Stream {STREAM_KEY} not found. {SOURCE}: Input/output error"
)


@pytest.mark.parametrize(
    ("source", "redacted"),
    [
        (SOURCE, "rtmp://***@1.1.1.1:1935/live/***?***"),
        ("rtmp://1.1.1.1/live", "rtmp://1.1.1.1/live"),
        ("rtmps://live.example.com/app/inst/KEY", "rtmps://live.example.com/app/***"),
        ("https://cdn.example.com/hls/room.m3u8?auth_key=1-0-0-abc", "https://cdn.example.com/hls/room.m3u8?***"),
        ("srt://1.1.1.1:9000?streamid=room&passphrase=secret-phrase", "srt://1.1.1.1:9000?***"),
        ("http://u:p@[2001:db8::1]:8080/a.flv#frag", "http://***@[2001:db8::1]:8080/a.flv#***"),
        ("/recordings/room.mp4", "/recordings/room.mp4"),
        ("http://[::1/", "http://***"),
    ],
)  # fmt: skip
def test_a_source_loses_its_credentials_query_and_stream_key(source: str, redacted: str) -> None:
    assert redact_source(source) == redacted


def test_free_text_loses_every_url_secret_and_the_bare_stream_key() -> None:
    text = redact_text(FFMPEG_ERROR, SOURCE)
    assert not any(secret in text for secret in SECRETS), text
    assert "rtmp://***@1.1.1.1:1935/live/***?***: Input/output error" in text
    # Without the source, URLs are still redacted (a bare key cannot be recognised).
    assert PASSWORD not in redact_text(FFMPEG_ERROR) and TOKEN not in redact_text(FFMPEG_ERROR)


# -- the API -------------------------------------------------------------------------------
@pytest.fixture
def api(stores: Stores, tmp_path: Path) -> Iterator[ApiServer]:
    add_stream(stores, tmp_path, "shop", SHOP)
    with running_api(stores) as server:
        yield server


def test_only_admins_see_stream_credentials_and_the_audit_log_never_does(
    api: ApiServer,
) -> None:
    with api.client("admin") as admin:
        started = admin.post("/api/v1/streams", json={"name": "room", "source": SOURCE})
        assert started.status_code == 201, started.text
        assert started.json()["source"] == SOURCE
    row = api.stores.catalog.get_stream("room")
    api.stores.catalog.note_recording_error(row.id, FFMPEG_ERROR)
    for role in ("reviewer", "compliance", "case-system"):
        with api.client(role) as client:
            listed = client.get("/api/v1/streams")
            one = client.get("/api/v1/streams/room")
        assert listed.status_code == one.status_code == 200, (listed.text, one.text)
        for answer in (listed, one):
            assert not any(secret in answer.text for secret in SECRETS), (role, answer.text)
        assert one.json()["source"] == "rtmp://***@1.1.1.1:1935/live/***?***"
        assert "Input/output error" in one.json()["last_error"]
    with api.client("admin") as admin:
        assert admin.get("/api/v1/streams/room").json()["last_error"] == FFMPEG_ERROR
        assert SOURCE in admin.get("/api/v1/streams").text
        events = admin.get("/api/v1/audit").json()
    (start,) = [e for e in events if e["action"] == "stream.start"]
    assert start["details"]["source"] == "rtmp://***@1.1.1.1:1935/live/***?***"
    assert not any(secret in str(events) for secret in SECRETS)


def test_the_supervisor_logs_a_redacted_source(
    stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    stream_id = stores.chain.open_stream("room", SOURCE)
    stores.catalog.want_recording(stream_id, True, SOURCE)
    supervisor = RecordingSupervisor(stores, restart_seconds=3600)
    with caplog.at_level(logging.INFO, logger="recorder"):
        try:
            supervisor.reconcile()
        finally:
            supervisor.pool.stop_all()
    said = [r.getMessage() for r in caplog.records if "recording room from" in r.getMessage()]
    assert said == ["recording room from rtmp://***@1.1.1.1:1935/live/***?***"]
    assert not any(s in r.getMessage() for r in caplog.records for s in SECRETS)


def test_every_read_of_evidence_is_audited(api: ApiServer) -> None:
    with api.client("reviewer") as reviewer:
        transcript = reviewer.get("/api/v1/streams/shop/transcript", params={"end": 30})
        assert transcript.status_code == 200 and transcript.json(), transcript.text
        for _ in range(3):  # a player reloading the playlist
            assert reviewer.get("/api/v1/streams/shop/playlist.m3u8").status_code == 200
        segment = reviewer.get("/api/v1/streams/shop/segments/1.ts")
        assert segment.status_code == 200
        assert reviewer.get("/api/v1/streams/shop/segments/2.ts").status_code == 200
    with api.client("case-system") as case_system:
        assert case_system.get("/api/v1/streams/shop/segments/1.ts").status_code == 200
    with api.client("admin") as admin:
        events = admin.get("/api/v1/audit").json()
        assert admin.get("/api/v1/audit/verify").json()["ok"] is True
    reads = [(e["action"], e["role"], e["details"]) for e in events]
    (read,) = [d for a, _, d in reads if a == "transcript.read"]
    assert read == {"stream": "shop", "start": 0.0, "end": 30.0, "utterances": 6}
    # Reloads of the playlist within the window: one event, the segments one each.
    assert [r for a, r, _ in reads if a == "stream.playback"] == ["reviewer"]
    segments = [(r, d["seq"], d["sha256"]) for a, r, d in reads if a == "segment.read"]
    stored = api.stores.catalog.segments(api.stores.catalog.get_stream("shop").id)
    sha = {s.seq: s.sha256 for s in stored}
    assert segments == [
        ("reviewer", 1, sha[1]),
        ("reviewer", 2, sha[2]),
        ("case-system", 1, sha[1]),
    ]
    assert hashlib.sha256(segment.content).hexdigest() == sha[1]


# -- webhook secrets at rest ------------------------------------------------------------------
LONG_SECRET = "long-secret-" + "x" * 116  # 128 characters: sealed as its HMAC key


def deliver_a_receipt(stores: Stores) -> None:
    """Sign the audit log's head: a receipt queued for every webhook; then post it."""
    log = AuditLog(stores.catalog, stores.blobs, stores.chain.signer, stores.settings)
    log.record("test", "admin", "test.event", {})
    assert log.sign_head() is not None
    notifier = WebhookNotifier(stores.catalog, stores.settings)
    try:
        notifier.deliver_due()
    finally:
        notifier.close()


def signed_with(secret: str, received: Received) -> bool:
    """Whether a post verifies with ``secret``, as the receiver checks it."""
    headers = received.headers
    return verify_signature(
        secret, headers[TIMESTAMP_HEADER], received.body, headers[SIGNATURE_HEADER]
    )


def test_reads_of_evidence_from_the_command_line_are_audited_too(
    tmp_path: Path, test_video: Path
) -> None:
    home = tmp_path / "home"
    with open_stores(Settings(home=home)) as stores:
        record(stores, test_video)
    out = tmp_path / "out"
    out.mkdir()
    since, until = iso(T0 + timedelta(seconds=5)), iso(T0 + timedelta(seconds=15))
    for args in (
        ("transcript", "--stream", "shop"),
        ("clip", "--stream", "shop", "--offset", "8", "-o", str(out / "clip.mp4")),
        (
            "package",
            "--stream",
            "shop",
            "--since",
            since,
            "--until",
            until,
            "-o",
            str(out / "p.zip"),
        ),
    ):
        done = cli_in_process(home, *args)
        assert done.exit_code == 0, done.output
    with open_stores(Settings(home=home)) as stores:
        events = [(e.action, e.role, e.actor) for e in stores.catalog.audit_events()]
        assert [(a, r) for a, r, _ in events] == [
            ("transcript.read", "operator"),
            ("moment.clip", "operator"),
            ("export", "operator"),
        ]
        assert all(actor.startswith("cli ") and "@" in actor for _, _, actor in events)
        key = stores.chain.signer.public_key
        assert verify_audit(stores.catalog, stores.blobs, key).ok


def test_a_copy_of_the_catalog_alone_does_not_reveal_webhook_secrets(
    api: ApiServer, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    secrets = {}
    with api.client("case-system") as case_system:
        for secret in (None, LONG_SECRET):
            body = {"url": receiver.url} | ({"secret": secret} if secret else {})
            created = case_system.post("/api/v1/webhooks", json=body)
            assert created.status_code == 201, created.text
            secrets[created.json()["id"]] = created.json()["secret"]  # shown once, here
        assert all("secret" not in w for w in case_system.get("/api/v1/webhooks").json())
    keys_dir = api.stores.settings.signing_keys_dir
    assert stat.S_IMODE((keys_dir / KEY_NAME).stat().st_mode) == 0o600
    # The catalog copied alone (as a backup or a leaked file would be).
    copy = tmp_path / "copy.sqlite3"
    live = sqlite3.connect(api.stores.settings.home / "catalog.sqlite3")
    with live, sqlite3.connect(copy) as target:
        live.backup(target)
    live.close()
    data = copy.read_bytes()
    for secret in secrets.values():
        assert secret.encode() not in data
    with sqlite3.connect(copy) as db:
        stored = [row[0] for row in db.execute("SELECT secret FROM webhooks")]
    assert all(s.startswith(SEALED_PREFIX) and len(s) <= 128 for s in stored), stored
    opened = Catalog(f"sqlite:///{copy}")
    try:
        with pytest.raises(ConfigError, match="sealed"):
            opened.webhook_signing_key(opened.webhooks()[0])
    finally:
        opened.close()
    # The service itself still signs with them: each receiver checks its own secret.
    deliver_a_receipt(api.stores)
    got = receiver.wait_for(2, 10)
    assert len(got) == 2
    verified_by = sorted(
        webhook_id
        for received in got
        for webhook_id, secret in secrets.items()
        if signed_with(secret, received)
    )
    assert verified_by == sorted(secrets), "each post verifies with its own webhook's secret"


def test_plain_text_secrets_of_an_earlier_release_are_sealed_and_keep_signing(
    home: Path, receiver: WebhookReceiver
) -> None:
    old_secret = "an-old-plain-text-secret-0123"
    with open_stores(Settings(home=home)):
        pass
    with sqlite3.connect(home / "catalog.sqlite3") as db:  # as an earlier release stored it
        db.execute(
            "INSERT INTO webhooks (url, secret, active, created_at)"
            " VALUES (?, ?, 1, '2026-01-01 00:00:00.000000')",
            (receiver.url, old_secret),
        )
    with open_stores(Settings(home=home)) as stores:
        (webhook,) = stores.catalog.webhooks()
        assert webhook.secret.startswith(SEALED_PREFIX)
        deliver_a_receipt(stores)
    (received,) = receiver.wait_for(1, 10)
    assert signed_with(old_secret, received)
    # Without the keys directory the sealed secrets cannot be used, and no new key is made
    # that could not open them.
    (home / "keys" / KEY_NAME).unlink()
    with open_stores(Settings(home=home)) as stores:
        with pytest.raises(ConfigError, match="copy the deployment's keys directory"):
            stores.catalog.add_webhook(receiver.url, "another-secret-0123456789")
        with pytest.raises(ConfigError, match="copy the deployment's keys directory"):
            stores.catalog.webhook_signing_key(stores.catalog.webhooks()[0])
    assert not (home / "keys" / KEY_NAME).exists()


# -- file modes -------------------------------------------------------------------------------
def test_a_fresh_run_leaves_a_data_home_private_to_the_service_user(
    tmp_path: Path, ffmpeg: str
) -> None:
    video = make_test_video(ffmpeg, tmp_path / "room.mp4", seconds=4)
    home = tmp_path / "home"
    result = run_cli(
        home, "ingest", str(video), "--stream", "room", "--segment-seconds", "2",
        "--started-at", "2026-11-20T12:00:00Z", "--no-transcribe",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "other users" not in result.stderr
    assert run_cli(home, "reindex").returncode == 0  # the search index too
    found = [home, *home.rglob("*")]
    names = {p.relative_to(home).parts[0] for p in found if p != home}
    assert {"catalog.sqlite3", "keys", "blobs"} <= names, names
    for path in found:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {mode:04o}"
        if path.is_dir():
            assert mode == 0o700, f"{path} is {mode:04o}"


def test_a_readable_data_home_or_key_gives_one_warning_line(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open_stores(Settings(home=home)):
        pass
    home.chmod(0o755)
    key = home / "keys" / "signing.ed25519.pem"
    key.chmod(0o644)
    result = run_cli(home, "keys", "list")
    assert result.returncode == 0, result.stderr  # a warning, not a refusal
    lines = [line for line in result.stderr.splitlines() if "other users" in line]
    assert len(lines) == 1, result.stderr
    assert f"{home} (0755)" in lines[0] and f"{key} (0644)" in lines[0]
    assert f"chmod -R go-rwx {home}" in lines[0]
    subprocess.run(["chmod", "-R", "go-rwx", str(home)], check=True)  # what it says to do
    with caplog.at_level(logging.WARNING), open_stores(Settings(home=home)):
        pass
    assert not [r for r in caplog.records if "other users" in r.getMessage()]
